"""The runs index: every run folder a pipeline ran in, so ``tac runs`` can list them with their scores.

The index is a JSON-lines file, one ``{"path", "added"}`` per run folder:
``$TAC_RUNS_INDEX``, else ``$TAC_CACHE_DIR/runs.jsonl``, else
``~/.cache/tac/runs.jsonl``. Folders that no longer exist are skipped when
listing, never an error.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tac_core.errors import InputError, TacError
from tac_core.evidence import ScoreRecord
from tac_core.pipeline.layout import LEDGER, RUN_JSON, STEP_JSON, STEPS, now, read_json, step_dir

INDEX_ENV = "TAC_RUNS_INDEX"
CACHE_ENV = "TAC_CACHE_DIR"
SCORE_JSON = "score.json"


def index_path() -> Path:
    """Where the runs index lives (see the module docstring)."""
    if os.environ.get(INDEX_ENV):
        return Path(os.environ[INDEX_ENV])
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "tac") / "runs.jsonl"


def indexed_folders(index: Path | None = None) -> list[Path]:
    """The run folders in the index, in the order they were added (malformed lines are skipped)."""
    try:
        lines = Path(index or index_path()).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"{index or index_path()}: cannot read the runs index ({exc})") from None
    folders: list[Path] = []
    for line in lines:
        try:
            path = json.loads(line)["path"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(path, str) and Path(path) not in folders:
            folders.append(Path(path))
    return folders


def record_run(run_dir: Path, index: Path | None = None) -> None:
    """Add ``run_dir`` (absolute) to the index unless it is listed already."""
    run_dir = Path(run_dir).absolute()
    index = Path(index or index_path())
    if run_dir in indexed_folders(index):
        return
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(index, "a", encoding="utf-8") as f:
        f.write(json.dumps({"path": str(run_dir), "added": now()}) + "\n")


@dataclass(frozen=True)
class ScoreFile:
    """A ``score.json`` found in a run: its record, or why it could not be read."""

    path: Path
    record: ScoreRecord | None
    error: str = ""


@dataclass(frozen=True)
class RunInfo:
    """One run folder as ``tac runs`` shows it."""

    path: Path
    created: str
    meta: dict[str, Any]
    steps: list[str]
    finished: int
    last_activity: str
    scores: list[ScoreFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "created": self.created, "meta": self.meta, "steps": self.steps,
                "finished": self.finished, "total": len(self.steps), "last_activity": self.last_activity,
                "scores": [{"path": str(s.path), "record": asdict(s.record) if s.record else None,
                            "error": s.error} for s in self.scores],
                "problems": self.problems}


def _finished_steps(run_dir: Path, names: list[str]) -> int:
    """How many steps, from the first, hold a step.json chained to the one before."""
    previous, count = "", 0
    for name in names:
        record = read_json(step_dir(run_dir, name) / STEP_JSON)
        if not isinstance(record, dict) or record.get("previous") != previous:
            break
        previous, count = record.get("key"), count + 1
    return count


def _last_ledger_time(run_dir: Path) -> str:
    try:
        with open(run_dir / LEDGER, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 65536, 0))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            return str(json.loads(line)["time"])
        except (ValueError, KeyError, TypeError):
            continue
    return ""


def _read_score(path: Path) -> ScoreFile:
    try:
        return ScoreFile(path, ScoreRecord.from_json(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, TacError) as exc:
        return ScoreFile(path, None, f"{type(exc).__name__}: {exc}".splitlines()[0])


def _score_paths(run_dir: Path, meta: dict[str, Any]) -> list[Path]:
    paths = [run_dir / SCORE_JSON, *sorted((run_dir / STEPS).glob(f"*/{SCORE_JSON}"))]
    output = meta.get("output")
    if isinstance(output, str) and output:
        paths.append((run_dir / output) / SCORE_JSON)     # an absolute output replaces run_dir
    seen: list[Path] = []
    for p in paths:
        if p.is_file() and p.resolve() not in {s.resolve() for s in seen}:
            seen.append(p)
    return seen


def describe_run(run_dir: Path) -> RunInfo:
    """What a run folder holds: an ``InputError`` if it is not a run folder."""
    run_dir = Path(run_dir).absolute()
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run folder not found")
    if not (run_dir / RUN_JSON).is_file():
        raise InputError(f"{run_dir}: not a run folder (no {RUN_JSON})")
    problems: list[str] = []
    record = read_json(run_dir / RUN_JSON)
    if not isinstance(record, dict):
        problems.append(f"{RUN_JSON} is unreadable")
        record = {}
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    steps = [s for s in record.get("steps", []) if isinstance(s, str)] if isinstance(record.get("steps"), list) \
        else []
    created = str(record.get("created", ""))
    last = _last_ledger_time(run_dir) or str(record.get("updated", created))
    scores, seen = [], set()
    for score in (_read_score(p) for p in _score_paths(run_dir, meta)):
        same = None if score.record is None else score.record.to_json()
        if same is not None and same in seen:
            continue                       # a copy of a record already listed (a step's and the output's)
        seen.add(same)
        scores.append(score)
    problems += [f"{s.path}: {s.error}" for s in scores if s.record is None]
    return RunInfo(run_dir, created, meta, steps, _finished_steps(run_dir, steps), last, scores, problems)


def list_runs(index: Path | None = None) -> list[RunInfo]:
    """The indexed runs that still exist, newest first (by creation, then by when they were indexed)."""
    return newest_first([describe_run(p) for p in indexed_folders(index) if (p / RUN_JSON).is_file()])


def newest_first(runs: list[RunInfo]) -> list[RunInfo]:
    """``runs`` sorted by creation time, newest first; ties keep the later-listed run first."""
    order = sorted(range(len(runs)), key=lambda i: (runs[i].created, i), reverse=True)
    return [runs[i] for i in order]
