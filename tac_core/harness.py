"""Run a submission folder the way the official harness does: unzip archive.zip into
``archive/``, then ``bash inflate.sh archive inflated NAMES_FILE`` from a given folder,
and check that every named video was inflated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from tac_core import contract
from tac_core.errors import TacError
from tac_core.files import require_file


class InflateError(TacError):
    """A submission's inflate.sh failed or did not write every video."""


def run_inflate(submission_dir: Path, names: Sequence[str], *, python: str | None = None,
                cwd: Path | None = None, timeout_s: float = contract.INFLATE_TIME_LIMIT_S,
                env: dict[str, str] | None = None) -> dict[str, Path]:
    """Unzip and inflate ``submission_dir``; returns the ``.raw`` path of each name."""
    from tac_core.archive.packaging import unpack_zip

    submission_dir = Path(submission_dir).resolve()
    archive = require_file(submission_dir / contract.ARCHIVE_NAME, "archive")
    script = require_file(submission_dir / contract.INFLATE_SCRIPT, "inflate script")
    archive_dir, inflated_dir = submission_dir / "archive", submission_dir / contract.INFLATED_DIR
    shutil.rmtree(archive_dir, ignore_errors=True)
    shutil.rmtree(inflated_dir, ignore_errors=True)
    unpack_zip(archive.read_bytes(), archive_dir)
    run_env = {**os.environ, **(env or {}), "PYTHON": python or sys.executable}
    with tempfile.TemporaryDirectory() as tmp:
        names_file = Path(tmp) / "names.txt"
        names_file.write_text("".join(f"{n}\n" for n in names))
        try:
            done = subprocess.run(["bash", str(script), str(archive_dir), str(inflated_dir), str(names_file)],
                                  cwd=cwd or submission_dir, env=run_env, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise InflateError(f"{script}: inflate ran past {timeout_s:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise InflateError(f"{script}: inflate failed: {last}")
    raws = {n: inflated_dir / f"{Path(n).stem}.raw" for n in names}
    missing = [str(p) for p in raws.values() if not p.is_file()]
    if missing:
        raise InflateError(f"{script}: did not write {', '.join(missing)}")
    return raws
