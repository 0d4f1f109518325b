"""Run a chain of steps in a run folder: skip the finished ones, resume the interrupted one, record all.

For each step, in order (up to ``until``):

    key = step.key(previous key)
    step.json has this key, and not forced  -> cached: nothing runs
    .key has this key, no step.json         -> interrupted (or failed) earlier: run again in
                                               the same folder with ctx.resuming = True
    otherwise (new, changed, forced)        -> clear the folder, write .key, run
    after a run: step.json (atomically, last), a ledger line

Before a step runs, the ``step.json`` and ``.key`` of every later step are
removed: their inputs are about to change, even when a forced or resumed
rerun leaves this step's key as it was.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tac_core.errors import InputError
from tac_core.files import write_atomic
from tac_core.pipeline.layout import KEY_FILE, LEDGER, RUN_JSON, STEP_JSON, now, read_json, step_dir
from tac_core.pipeline.runs import record_run
from tac_core.pipeline.steps import Step, canonical_json


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class StepContext:
    """What a running step sees: its folder, its config, whether it resumes, earlier steps' results."""

    name: str
    dir: Path
    run_dir: Path
    config: Mapping[str, Any]
    key: str
    resuming: bool
    _order: tuple[str, ...] = ()
    _earlier: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _check_earlier(self, name: str) -> None:
        if name in self._earlier:
            return
        if name not in self._order:
            raise InputError(f"step {self.name!r} asked for step {name!r}, which is not in this pipeline "
                             f"(steps: {', '.join(self._order)})")
        raise InputError(f"step {self.name!r} asked for step {name!r}, which does not come before it "
                         f"(order: {' -> '.join(self._order)})")

    def output(self, name: str) -> Path:
        """The folder of the earlier step ``name``."""
        self._check_earlier(name)
        return step_dir(self.run_dir, name)

    def summary(self, name: str) -> dict[str, Any]:
        """The summary the earlier step ``name`` returned."""
        self._check_earlier(name)
        return dict(self._earlier[name])


@dataclass(frozen=True)
class StepOutcome:
    """One step's result: ``status`` "ran" or "cached"; ``seconds`` this call spent on it."""

    name: str
    key: str
    status: str
    seconds: float
    summary: dict[str, Any]
    dir: Path


@dataclass(frozen=True)
class PipelineResult:
    run_dir: Path
    steps: tuple[StepOutcome, ...]

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "ran"]

    @property
    def cached(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "cached"]

    def __getitem__(self, name: str) -> StepOutcome:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


def _index_of(name: str | None, names: list[str], option: str) -> int | None:
    if name is None:
        return None
    if name not in names:
        raise InputError(f"{option} {name!r} is not a step of this pipeline (steps: {', '.join(names)})")
    return names.index(name)


def _check_steps(steps: Sequence[Step]) -> list[str]:
    if not steps:
        raise InputError("a pipeline needs at least one step")
    names: list[str] = []
    for s in steps:
        if not isinstance(s, Step):
            raise InputError(f"pipeline steps must be Step objects, not {type(s).__name__}")
        if s.name in names:
            raise InputError(f"two steps are named {s.name!r}; step names must be unique")
        names.append(s.name)
    return names


def _write_run_json(run_dir: Path, names: list[str], meta: Mapping[str, Any]) -> None:
    from tac_core import __version__

    canonical_json(dict(meta), "pipeline meta")
    old = read_json(run_dir / RUN_JSON)
    created = old.get("created") if isinstance(old, dict) and isinstance(old.get("created"), str) else now()
    record = {"created": created, "updated": now(), "tac_version": __version__, "meta": dict(meta),
              "steps": names}
    write_atomic(run_dir / RUN_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _ledger(run_dir: Path, step: str, key: str, status: str, seconds: float, **extra: Any) -> None:
    line = {"step": step, "key": key, "status": status, "seconds": round(max(seconds, 0.0), 3),
            "time": now(), **extra}
    with open(run_dir / LEDGER, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
        f.flush()


def _finished(folder: Path, key: str) -> dict[str, Any] | None:
    """The step.json in ``folder`` if it records ``key``."""
    record = read_json(folder / STEP_JSON)
    return record if isinstance(record, dict) and record.get("key") == key else None


def _interrupted(folder: Path, key: str) -> bool:
    try:
        started = (folder / KEY_FILE).read_text().strip()
    except OSError:
        return False
    return started == key and not (folder / STEP_JSON).exists()


def _invalidate(run_dir: Path, names: list[str]) -> None:
    for name in names:
        for marker in (STEP_JSON, KEY_FILE):
            (step_dir(run_dir, name) / marker).unlink(missing_ok=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_pipeline(run_dir: Path, steps: Sequence[Step], *, from_step: str | None = None,
                 until: str | None = None, meta: Mapping[str, Any] | None = None,
                 log: Callable[[str], None] = _stderr) -> PipelineResult:
    """Run ``steps`` in order in ``run_dir``, skipping those already finished with the same key.

    ``from_step`` reruns that step and every later one from scratch; ``until``
    stops after that step. ``meta`` (JSON: renderer, command line, ...) goes
    into ``run.json``. A step's exception is recorded in the ledger and
    re-raised; the step is then not finished and runs again next time, resuming in its folder
    (``from_step`` starts it clean).
    """
    run_dir = Path(run_dir).absolute()
    names = _check_steps(steps)
    start = _index_of(from_step, names, "from_step")
    stop = _index_of(until, names, "until")
    if start is not None and stop is not None and stop < start:
        raise InputError(f"until {until!r} comes before from_step {from_step!r}")
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"{run_dir}: exists and is not a folder; give a folder for the run")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_run_json(run_dir, names, meta or {})
    try:
        record_run(run_dir)
    except (OSError, InputError) as exc:      # an unwritable index must not stop the run
        log(f"could not record {run_dir} in the runs index: {exc}")

    outcomes: list[StepOutcome] = []
    earlier: dict[str, dict[str, Any]] = {}
    previous = ""
    for i, step in enumerate(steps[: None if stop is None else stop + 1]):
        t0 = time.monotonic()
        key = step.key(previous)
        folder = step_dir(run_dir, step.name)
        forced = start is not None and i >= start
        done = None if forced else _finished(folder, key)
        if done is not None:
            summary = done.get("summary") if isinstance(done.get("summary"), dict) else {}
            seconds = time.monotonic() - t0
            _ledger(run_dir, step.name, key, "cached", seconds, summary=summary)
            log(f"step {step.name}: cached (key {key[:8]})")
        else:
            resuming = not forced and _interrupted(folder, key)
            summary, seconds = _run_step(run_dir, step, key, previous, resuming, names, earlier, t0, log)
        outcomes.append(StepOutcome(step.name, key, "cached" if done is not None else "ran", seconds,
                                    summary, folder))
        earlier[step.name] = summary
        previous = key
    return PipelineResult(run_dir, tuple(outcomes))


def _run_step(run_dir: Path, step: Step, key: str, previous: str, resuming: bool, names: list[str],
              earlier: dict[str, dict[str, Any]], t0: float, log: Callable[[str], None]
              ) -> tuple[dict[str, Any], float]:
    folder = step_dir(run_dir, step.name)
    _invalidate(run_dir, names[names.index(step.name) + 1:])
    if not resuming:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        write_atomic(folder / KEY_FILE, key + "\n")
    ctx = StepContext(name=step.name, dir=folder, run_dir=run_dir, config=dict(step.config), key=key,
                      resuming=resuming, _order=tuple(names), _earlier=dict(earlier))
    try:
        returned = step.run(ctx)
        if returned is not None and not isinstance(returned, Mapping):
            raise InputError(f"step {step.name!r} returned {type(returned).__name__}; "
                             f"return a dict summary or None")
        summary = dict(returned or {})
        canonical_json(summary, f"step {step.name!r} summary")
    except Exception as exc:
        seconds = time.monotonic() - t0
        _ledger(run_dir, step.name, key, "failed", seconds, error=_one_line(exc))
        log(f"step {step.name}: failed after {seconds:.1f} s: {_one_line(exc)}")
        raise
    except BaseException as exc:           # Ctrl-C, SystemExit: not the step's fault; resume next time
        seconds = time.monotonic() - t0
        _ledger(run_dir, step.name, key, "interrupted", seconds, error=_one_line(exc))
        log(f"step {step.name}: interrupted after {seconds:.1f} s")
        raise
    seconds = time.monotonic() - t0
    record = {"name": step.name, "key": key, "previous": previous, "config": dict(step.config),
              "version": step.version, "files": [str(Path(p)) for p in step.files], "summary": summary,
              "seconds": round(seconds, 3), "resumed": resuming, "finished": now()}
    write_atomic(folder / STEP_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")
    _ledger(run_dir, step.name, key, "ran", seconds, summary=summary)
    log(f"step {step.name}: ran in {seconds:.1f} s" + (" (resumed)" if resuming else ""))
    return summary, seconds
