"""``tac compress``: the main job. A video in; a contest submission folder out, inflated through
its own inflate.sh, evaluated, and a score table against the x265 baseline on the same clip.

    VIDEO (default: the embedded synthetic clip)
      --the method's pipeline in OUT/work/ (tac_torch.compress_steps; each step cached by a
        content hash, so a rerun does only what changed and an interrupted one resumes)-->
      hnerv_pair: targets -> train -> tto -> sidecar -> pose_field -> package -> evaluate
      mask_warp:  targets -> train -> lowbit -> maps -> tto -> finetune -> sidecar -> pose_field -> package
                  -> evaluate
      x265 | av1: encode -> evaluate
      --publish--> OUT/ (archive.zip, inflate.sh, inflate.py, runtime/, tac_core/, tac_torch/,
                         report.txt, score.json)
    VIDEO --x265 baseline_fast (a run of its own in OUT/work/baseline)--> its row

``--from STEP`` redoes a step and those after it; ``--until STEP`` stops after one;
``tac runs`` lists past runs with their score records.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tac_core import classical, contract
from tac_core.errors import InputError
from tac_core.files import sha256_file
from tac_core.registry import Command
from tac_torch.evaluate_cmd import add_scorer_arguments, scorers_from_args

PRESET_SECONDS = {"demo": 10.0, "contest": 60.0}
LEARNED = ("hnerv_pair", "mask_warp")
METHODS = (*LEARNED, *sorted(classical.CODECS))
WORK = "work"
BASELINE = "baseline"


def _configure(parser) -> None:
    parser.add_argument("video", nargs="?", type=Path,
                        help="video to compress (default: the embedded synthetic driving clip)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="submission folder to write")
    parser.add_argument("--method", "--renderer", dest="method", choices=METHODS, default="mask_warp",
                        help="a learned renderer: mask_warp (default: class maps + poses + a small renderer) "
                             "or hnerv_pair (a decoder + a latent per pair), or a classical codec: x265 (the "
                             "contest's baseline_fast settings), av1 (SVT-AV1)")
    parser.add_argument("--preset", default="demo",
                        help="training recipe: demo (minutes on a CPU), contest (hours on a GPU) or a TOML "
                             "file; also sets the default clip's length (demo 10 s, contest 60 s)")
    parser.add_argument("--steps", type=int, help="train this many steps in all (the recipe's stages scaled)")
    parser.add_argument("--seconds", type=float, help="length of the default clip (overrides the preset)")
    parser.add_argument("--crf", type=int, help="classical methods: override the codec's CRF")
    parser.add_argument("--scale", type=float, help="classical methods: override the downscale factor")
    parser.add_argument("--from", dest="from_step", metavar="STEP",
                        help="redo this step and the ones after it (a rerun otherwise skips finished steps "
                             "and resumes an interrupted one)")
    parser.add_argument("--until", metavar="STEP", help="stop after this step")
    parser.add_argument("--no-baseline", action="store_true", help="skip the x265 baseline row")
    add_scorer_arguments(parser)


def resolve_video(args) -> Path:
    """The user's VIDEO, or the embedded default clip for the preset."""
    if args.video is not None:
        if not args.video.is_file():
            raise InputError(f"{args.video}: video not found")
        return args.video
    from tac_core.scenes import default_clip

    seconds = args.seconds if args.seconds is not None else PRESET_SECONDS.get(args.preset, 10.0)
    if seconds <= 0:
        raise InputError("--seconds must be positive")
    return default_clip(seconds=seconds)


def table(rows: list[dict]) -> str:
    """A fixed-width score table; every row names its evidence axis."""
    head = f"{'method':<24}{'seg':>11}{'pose':>12}{'bytes':>11}{'rate':>10}{'score':>9}  axis"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<24}{r['seg']:>11.6f}{r['pose']:>12.6f}{r['bytes']:>11,}"
                     f"{r['rate']:>10.6f}{r['score']:>9.4f}  {r['axis']}")
    return "\n".join(lines)


def _row(method: str, summary: dict) -> dict:
    return {"method": method, "seg": summary["seg"], "pose": summary["pose"], "bytes": summary["bytes"],
            "rate": summary["rate"], "score": summary["score"], "axis": summary["axis"]}


def _steps(args, job):
    """The method's steps and its name in the table."""
    from tac_torch import compress_steps

    if args.method in compress_steps.RENDERERS:
        return compress_steps.renderer_steps(job, args.method, args.preset, args.steps)
    codec = classical.CODECS[args.method].with_settings(crf=args.crf, scale=args.scale)
    return compress_steps.classical_steps(job, codec), f"{codec.name} crf{codec.crf} x{codec.scale}"


def _run(args) -> int:
    from tac_core.pipeline import run_pipeline
    from tac_torch import compress_steps

    if args.steps is not None and args.steps < 1:
        raise InputError("--steps must be at least 1")
    video = resolve_video(args)
    out = args.output
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    scorers = scorers_from_args(args)
    basis = "videos" if sha256_file(video) == contract.CONTEST_VIDEO_SHA256 else "contest-per-frame"
    job = compress_steps.Job(video, scorers, args.device, basis, shlex.join(["tac", *sys.argv[1:]]))
    steps, method = _steps(args, job)
    names = [s.name for s in steps]
    for flag, name in (("--from", args.from_step), ("--until", args.until)):
        if name is not None and name not in names:
            raise InputError(f"{flag} {name}: {args.method} has no such step (steps: {', '.join(names)})")
    out.mkdir(parents=True, exist_ok=True)
    run = run_pipeline(out / WORK / args.method, steps, from_step=args.from_step, until=args.until,
                       meta={"method": method, "renderer": args.method, "video": str(video),
                             "output": str(out), "command": job.command})
    if run.steps[-1].name != "evaluate":
        print(f"stopped after step {run.steps[-1].name} (--until); rerun without --until to finish")
        return 0
    compress_steps.publish(run["evaluate"].dir, out)
    rows = [_row(method, run["evaluate"].summary)]

    if not args.no_baseline and args.method != "x265":
        base = classical.X265_BASELINE
        print(f"baseline: {base.name} CRF {base.crf} scale {base.scale} -> {out / WORK / BASELINE}", file=sys.stderr)
        baseline = run_pipeline(out / WORK / BASELINE, compress_steps.classical_steps(job, base),
                                meta={"method": "x265 baseline_fast", "video": str(video), "command": job.command})
        rows.append(_row("x265 baseline_fast", baseline["evaluate"].summary))

    print(table(rows))
    if len(rows) == 2:
        print(f"score ratio {rows[0]['method']} / x265 baseline = {rows[0]['score'] / rows[1]['score']:.3f}")
    if basis == "contest-per-frame":
        print(f"rate = archive bytes / (the contest's bytes per frame x {video.name}'s frames)")
    print(f"submission: {out}  (report.txt and score.json inside; work/ holds the runs: tac runs lists them)")
    return 0


def commands() -> list[Command]:
    return [Command("compress", "compress a video into a contest submission folder, inflate it, score it",
                    _configure, _run)]
