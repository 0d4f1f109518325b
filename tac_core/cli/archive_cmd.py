"""``tac archive inspect`` and ``tac archive repack``: look inside an archive, re-code it smaller.

Both accept the container or an archive.zip. A malformed file is one line on
stderr and exit code 2 (an ``ArchiveError``), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import tac_core.architectures  # noqa: F401  (registers the renderer schemas, so archives read by position)
from tac_core.archive import format as fmt
from tac_core.archive.chooser import ChooserOptions
from tac_core.archive.errors import ArchiveError
from tac_core.archive.inspect import describe, format_report, open_container, repack
from tac_core.archive.packaging import pack_zip
from tac_core.archive.reader import read_archive
from tac_core.errors import InputError
from tac_core.files import require_file, write_atomic
from tac_core.registry import Command

_MAX_FILE = fmt.MAX_CONTAINER_BYTES + (1 << 16)


def _read(path: str) -> bytes:
    p = require_file(Path(path), "archive")
    if p.stat().st_size > _MAX_FILE:
        raise ArchiveError(f"{p}: {p.stat().st_size} bytes is above the archive cap of {fmt.MAX_CONTAINER_BYTES}")
    return p.read_bytes()


def _configure_inspect(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="an archive container or archive.zip")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_inspect(args) -> int:
    try:
        info = describe(_read(args.file))
    except ArchiveError as exc:
        raise type(exc)(f"{args.file}: {exc}") from None
    print(json.dumps(info, indent=2) if args.json else format_report(info))
    return 0


def _configure_repack(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="an archive container or archive.zip")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="where to write (a name ending in .zip gets the contest packaging)")
    parser.add_argument("--contest-safe", action="store_true",
                        help="use only stages the contest runtime can decode (no zstd)")
    parser.add_argument("--effort", choices=("fast", "max"), default="max", help="how many combinations to try")


def _run_repack(args) -> int:
    data = _read(args.file)
    out = Path(args.output)
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name for the repacked archive")
    try:
        before = read_archive(open_container(data)[0])
        container = repack(data, ChooserOptions(contest_safe=args.contest_safe, effort=args.effort))
        after = read_archive(container)
    except ArchiveError as exc:
        raise type(exc)(f"{args.file}: {exc}") from None
    if any(not before.quantized[n].same_as(q) for n, q in after.quantized.items()) \
            or set(before.quantized) != set(after.quantized):
        raise ArchiveError("repacked archive does not decode to the same tensors; nothing written")
    payload = pack_zip(container) if out.suffix == ".zip" else container
    write_atomic(out, payload)
    print(f"{args.file}: {before.size} -> {len(container)} bytes container"
          + (f", {len(payload)} bytes archive.zip" if out.suffix == ".zip" else "") + f" -> {out}")
    return 0


def commands() -> list[Command]:
    return [
        Command("archive inspect", "show an archive's sections, tensors, quantizers, stages and bytes",
                _configure_inspect, _run_inspect),
        Command("archive repack", "re-choose an archive's entropy stages (same tensors, never larger)",
                _configure_repack, _run_repack),
    ]
