"""The torch backend's CLI commands. Importing this module does not import torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from tac_core.errors import InputError
from tac_core.registry import Command


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", type=Path,
                        help="folder to write segnet.safetensors and posenet.safetensors into "
                             "(created if missing)")
    parser.add_argument("--seed", type=int, default=0, metavar="K",
                        help="seed of the stand-in weights (default 0)")


def _run_export(args: argparse.Namespace) -> int:
    from tac_core.files import sha256_bytes, write_atomic
    from tac_torch.scorers import stand_in_files

    folder: Path = args.dir
    if args.seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {args.seed}")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    for name, data in stand_in_files(args.seed).items():
        path = folder / name
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror})") from None
        print(f"{path}  {len(data):,} bytes  sha256 {sha256_bytes(data)}")
    return 0


def commands() -> list[Command]:
    """The commands this backend adds to ``tac``."""
    return [
        Command(name="scorers export-stand-in",
                help="write seeded stand-in SegNet and PoseNet weight files, loadable like "
                     "the official ones (for tests and plumbing, not for quality)",
                configure=_configure_export, run=_run_export),
    ]
