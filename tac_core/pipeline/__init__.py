"""The pipeline runner: a chain of long steps, each cached by a content hash of what defines it.

A rerun skips finished steps; a changed setting reruns that step and the
ones after it (never those before); an interrupted step never looks
finished and resumes in its own folder; every step's outcome and time goes
into the run folder's ledger. Standard library only.

    RUN/
      run.json               created, updated, tac version, the caller's meta, step names
      ledger.jsonl           append-only, one line per event:
                               {"step", "key", "status": ran|cached|failed|interrupted,
                                "seconds", "summary" or "error", "time"}
      steps/<name>/          the step's working folder (ctx.dir)
        .key                 written first: the key this folder is working towards
        ...                  whatever the step writes (checkpoints, outputs, score.json)
        step.json            written last, atomically: key, previous key, config,
                             summary, seconds, finished time

    key(step i) = sha256(previous key, name, canonical config, input files' sha256, version)

        extract --key1--> train --key2--> export --key3--> ...
        (a new config for train changes key2 and key3, not key1)

    finished    step.json records the current key
    interrupted no step.json, .key equals the current key (Ctrl-C, a crash, an exception):
                run again in the same folder with ctx.resuming = True
    otherwise   clear the folder and run from scratch (so does from_step=, for it and later steps)
    a step that runs first removes the step.json and .key of every later step: a forced or
    resumed rerun keeps its key, but its output (the later steps' input) may change

Usage::

    steps = [Step("extract", extract, {"seconds": 60}, files=[video]),
             Step("train", train, {"steps": 20000, "lr": 1e-3}, version="2")]
    result = run_pipeline(run_dir, steps, meta={"renderer": "hnerv_pair"})

Run folders are recorded in a runs index (``runs.py``); ``tac runs`` lists them with the
score records (``tac_core.evidence.ScoreRecord``) found in ``RUN/score.json``,
``RUN/steps/*/score.json`` and ``<meta["output"]>/score.json``, and shows
``meta["renderer"]`` (or ``meta["method"]``).
"""

from tac_core.pipeline.runner import PipelineResult, StepContext, StepOutcome, run_pipeline
from tac_core.pipeline.runs import RunInfo, ScoreFile, describe_run, index_path, list_runs, record_run
from tac_core.pipeline.steps import Step

__all__ = [
    "PipelineResult",
    "RunInfo",
    "ScoreFile",
    "Step",
    "StepContext",
    "StepOutcome",
    "describe_run",
    "index_path",
    "list_runs",
    "record_run",
    "run_pipeline",
]
