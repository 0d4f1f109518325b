"""Assemble a contest submission folder:

    OUT/archive.zip      the archive members (deterministic zip)
    OUT/inflate.sh       bash inflate.sh ARCHIVE_DIR INFLATED_DIR NAMES_FILE
    OUT/inflate.py       puts OUT on sys.path and runs runtime.inflate
    OUT/runtime/         the inflate runtime (copied from tac's ``runtime/``)
    OUT/tac_core/        the tac_core modules the runtime needs, copied byte for byte
    OUT/tac_torch/       the renderer and frame modules a model member needs, copied byte for byte

Nothing else is needed where it runs: the contest environment's numpy, torch and PyAV.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from tac_core import contract
from tac_core.errors import InputError
from tac_core.files import write_atomic

# The modules the runtime imports (and what they import in turn), per package: files and
# sub-packages, each copied as it is beside a stub __init__.py. tac_torch's are the renderer
# and the upsampling training uses, so inflated frames are the ones training scored.
VENDORED = {
    "tac_core": ("errors.py", "contract.py", "files.py", "video.py", "archive", "architectures"),
    "tac_torch": ("renderers.py", "frames.py", "archive_io.py", "mask_warp.py", "mask_warp_io.py"),
}

INFLATE_SH = """#!/usr/bin/env bash
# bash inflate.sh ARCHIVE_DIR INFLATED_DIR NAMES_FILE: writes INFLATED_DIR/<name>.raw for each video name.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-$(command -v python || command -v python3)}"
exec "$PY" "$HERE/inflate.py" "$@"
"""

INFLATE_PY = '''"""Run the vendored inflate runtime of this submission folder."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    try:
        from runtime.inflate import main
        code = main()
    except ModuleNotFoundError as exc:      # a Python without numpy or torch: one line, like every error
        sys.stderr.write(f"inflate: error: {sys.executable} cannot import {exc.name}; run inflate.sh with "
                         f"a Python that has it: PYTHON=/path/to/python bash inflate.sh ...\\n")
        code = 2
    raise SystemExit(code)
'''

VENDORED_INIT = '"""A subset of {package}, vendored into a submission for its inflate runtime."""\n'


def _source_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"cannot find the {package} package to vendor; is tac installed?")
    return Path(next(iter(spec.submodule_search_locations)))


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)


def vendor_runtime(out_dir: Path) -> None:
    """Copy the runtime and the modules of ``VENDORED`` it needs into ``out_dir``."""
    _copy_tree(_source_dir("tac_runtime"), out_dir / "runtime")
    for package, names in VENDORED.items():
        src, dst = _source_dir(package), out_dir / package
        dst.mkdir(parents=True, exist_ok=True)
        (dst / "__init__.py").write_text(VENDORED_INIT.format(package=package))
        for name in names:
            if (src / name).is_dir():
                _copy_tree(src / name, dst / name)
            else:
                shutil.copy2(src / name, dst / name)


def write_submission(out_dir: Path, member: str, data: bytes) -> Path:
    """Write a complete submission folder into ``out_dir``: archive.zip holds ``data`` as ``member``."""
    from tac_core.archive.packaging import pack_zip

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("runtime", *VENDORED, contract.INFLATED_DIR, "archive"):
        shutil.rmtree(out_dir / stale, ignore_errors=True)
    vendor_runtime(out_dir)
    write_atomic(out_dir / "inflate.py", INFLATE_PY)
    write_atomic(out_dir / contract.INFLATE_SCRIPT, INFLATE_SH)
    (out_dir / contract.INFLATE_SCRIPT).chmod(0o755)
    write_atomic(out_dir / contract.ARCHIVE_NAME, pack_zip(data, member))
    return out_dir
