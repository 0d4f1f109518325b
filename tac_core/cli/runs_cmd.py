"""``tac runs``: the pipeline runs on this machine (or the folders given), newest first, with their scores.

Every score is printed with its evidence axis: a "proxy" or "stand-in"
number is not a contest number.
"""

from __future__ import annotations

import json
from pathlib import Path

from tac_core.pipeline.runs import RunInfo, describe_run, index_path, list_runs, newest_first
from tac_core.registry import Command

COLUMNS = (("run folder", "<"), ("created (UTC)", "<"), ("steps", ">"), ("method", "<"), ("score", ">"),
           ("seg", ">"), ("pose", ">"), ("bytes", ">"), ("axis", "<"))


def _when(stamp: str) -> str:
    return stamp[:16].replace("T", " ") if stamp else "-"


def _method(meta: dict) -> str:
    value = meta.get("renderer") or meta.get("method")
    return str(value) if value else "-"


def rows(runs: list[RunInfo]) -> list[tuple[str, ...]]:
    """One row per score record (a run without one gets a row of dashes); later records of a run
    leave the run's columns blank."""
    out = []
    for run in runs:
        head = (str(run.path), _when(run.created), f"{run.finished}/{len(run.steps)}", _method(run.meta))
        blank = ("",) * len(head)
        if not run.scores:
            out.append((*head, "-", "-", "-", "-", "-"))
        for i, s in enumerate(run.scores):
            first = head if i == 0 else blank
            if s.record is None:
                out.append((*first, "-", "-", "-", "-", f"unreadable {s.path.name}: {s.error}"))
                continue
            r = s.record
            out.append((*first, f"{r.score:.4f}", f"{r.seg:.6f}", f"{r.pose:.6f}", f"{r.archive_bytes:,}",
                        r.axis))
    return out


def table(runs: list[RunInfo]) -> str:
    """A fixed-width table of ``runs`` (columns sized to their contents)."""
    body = rows(runs)
    widths = [max(len(name), *(len(r[i]) for r in body)) for i, (name, _) in enumerate(COLUMNS)]

    def line(cells) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(cells, COLUMNS, widths)).rstrip()

    head = line(name for name, _ in COLUMNS)
    return "\n".join([head, "-" * len(head), *(line(r) for r in body)])


def _configure(parser) -> None:
    parser.add_argument("folders", nargs="*", type=Path, metavar="RUN",
                        help="run folders to show (default: every run in the runs index)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run(args) -> int:
    if args.folders:
        runs = newest_first([describe_run(f) for f in args.folders])
    else:
        runs = list_runs()
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs yet (a pipeline run records its folder in {index_path()})")
        return 0
    print(table(runs))
    return 0


def commands() -> list[Command]:
    return [Command("runs", "list pipeline runs: steps done, method, score and its evidence axis",
                    _configure, _run)]
