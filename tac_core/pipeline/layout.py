"""Names of the files in a run folder, and the small JSON helpers every part of the pipeline shares."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUN_JSON = "run.json"          # RUN/run.json: created, tac version, the caller's meta, step names
LEDGER = "ledger.jsonl"        # RUN/ledger.jsonl: one JSON line per step event, append-only
STEPS = "steps"                # RUN/steps/<name>/: a step's working folder
STEP_JSON = "step.json"        # written last, atomically: the step finished with this key
KEY_FILE = ".key"              # written first: the key the step is working towards


def now() -> str:
    """The current time, ISO 8601 in UTC to the second (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def step_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / STEPS / name
