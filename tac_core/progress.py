"""Progress bars on stderr (tqdm), quiet when asked or when stderr is not a terminal and TAC_PROGRESS=0."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress(*, total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False) -> Any:
    """A tqdm bar; ``TAC_PROGRESS=0`` turns every bar off."""
    from tqdm import tqdm

    off = disable or os.environ.get("TAC_PROGRESS") == "0"
    return tqdm(total=total, desc=desc, unit=unit, disable=off, file=sys.stderr, dynamic_ncols=True,
                leave=False)
