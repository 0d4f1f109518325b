"""A pipeline step and its key: a sha256 of everything that defines the step's output.

    key(i) = sha256( canonical JSON of
               { "previous": key(i-1) ("" for the first step),
                 "name":     step i's name,
                 "config":   step i's config,
                 "files":    [sha256 of each declared input file, in order],
                 "version":  step i's version string } )

Canonical JSON: sorted keys, no whitespace, floats written by ``repr`` (so
0.1 and 0.10000001 differ), NaN and infinities refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tac_core.errors import InputError
from tac_core.files import sha256_file

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def canonical_json(value: Any, what: str) -> str:
    """``value`` as canonical JSON; ``what`` names it in the error when it is not JSON data."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not JSON data ({exc}); use strings, numbers, booleans, "
                         f"lists and dicts with string keys") from None


def check_name(name: Any) -> str:
    """``name`` if it is a step name (lowercase letters, digits, ``-`` and ``_``), else an ``InputError``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(f"step name {name!r} is not a word: use lowercase letters, digits, '-' and '_' "
                         f"(starting with a letter or digit, at most 64 characters)")
    return name


@dataclass(frozen=True)
class Step:
    """One unit of a pipeline.

    ``run(ctx)`` does the work, writing files into ``ctx.dir``, and returns a
    small JSON summary (or None) for the ledger and the step's ``step.json``.
    ``config`` holds the JSON settings that define the output; ``files`` are
    input files hashed by content; bump ``version`` when the code changes
    what the step produces, so old results are not reused.
    """

    name: str
    run: Callable[[Any], Mapping[str, Any] | None]
    config: Mapping[str, Any] = field(default_factory=dict)
    files: Sequence[Path] = ()
    version: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        if not callable(self.run):
            raise InputError(f"step {self.name!r}: run must be a function taking the step context")
        if not isinstance(self.config, Mapping):
            raise InputError(f"step {self.name!r}: config must be a mapping of settings, "
                             f"not {type(self.config).__name__}")
        if isinstance(self.files, (str, Path)):
            raise InputError(f"step {self.name!r}: files must be a list of paths, not one path")
        canonical_json(dict(self.config), f"step {self.name!r} config")
        if not isinstance(self.version, str):
            raise InputError(f"step {self.name!r}: version must be a string")

    def file_hashes(self) -> list[str]:
        """sha256 of each declared input file, in order (an ``InputError`` if one is missing)."""
        return [sha256_file(Path(p)) for p in self.files]

    def key(self, previous: str) -> str:
        """This step's key, chained to the ``previous`` step's key ("" for the first step)."""
        material = {"previous": previous, "name": self.name, "config": dict(self.config),
                    "files": self.file_hashes(), "version": self.version}
        return hashlib.sha256(canonical_json(material, f"step {self.name!r}").encode()).hexdigest()
