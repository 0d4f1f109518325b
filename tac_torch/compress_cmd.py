"""``tac compress``: the main job. A video in; a contest submission folder out, inflated through
its own inflate.sh, evaluated, and a score table against the x265 baseline on the same clip.

    VIDEO (default: the embedded synthetic clip)
      --train (recipe: --preset demo|contest|FILE.toml)--> OUT/work/train/model.pt
      --export--> OUT/ (archive.zip, inflate.sh, inflate.py, runtime/, tac_core/, tac_torch/)
      --inflate.sh, evaluate--> OUT/report.txt, OUT/score.json
    VIDEO --x265 baseline_fast--> OUT/work/baseline-x265/ --inflate, evaluate--> its row

``--method x265`` or ``av1`` makes the submission with a classical codec instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tac_core import classical, contract, harness
from tac_core.errors import InputError
from tac_core.files import sha256_file, write_atomic
from tac_core.registry import Command
from tac_torch.evaluate_cmd import add_scorer_arguments, scorers_from_args

PRESET_SECONDS = {"demo": 10.0, "contest": 60.0}
METHODS = ("hnerv_pair", *sorted(classical.CODECS))
WORK = "work"


def _configure(parser) -> None:
    parser.add_argument("video", nargs="?", type=Path,
                        help="video to compress (default: the embedded synthetic driving clip)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="submission folder to write")
    parser.add_argument("--method", choices=METHODS, default="hnerv_pair",
                        help="hnerv_pair (learned; default), or a classical codec: x265 (the contest's "
                             "baseline_fast settings), av1 (SVT-AV1)")
    parser.add_argument("--preset", default="demo",
                        help="training recipe: demo (minutes on a CPU), contest (hours on a GPU) or a TOML "
                             "file; also sets the default clip's length (demo 10 s, contest 60 s)")
    parser.add_argument("--steps", type=int, help="train this many steps in all (the recipe's stages scaled)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted training in OUT")
    parser.add_argument("--seconds", type=float, help="length of the default clip (overrides the preset)")
    parser.add_argument("--crf", type=int, help="classical methods: override the codec's CRF")
    parser.add_argument("--scale", type=float, help="classical methods: override the downscale factor")
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


def _row(method: str, result) -> dict:
    c = result.components
    return {"method": method, "seg": c.seg, "pose": c.pose, "bytes": c.archive_bytes, "rate": c.rate,
            "score": c.score, "axis": result.record.axis}


def _evaluate(folder: Path, video: Path, scorers, basis: str):
    from tac_torch.evaluate import evaluate

    harness.run_inflate(folder, [video.name])
    names = folder / ".names.txt"
    write_atomic(names, video.name + "\n")
    try:
        return evaluate(folder, video.parent, scorers, names_file=names, rate_basis=basis)
    finally:
        names.unlink(missing_ok=True)


def _learned(args, video: Path, scorers, out: Path) -> str:
    from tac_torch.export import export_submission, load_model_file
    from tac_torch.recipe import load_recipe
    from tac_torch.train import train

    recipe = load_recipe(args.preset)
    if args.steps is not None:
        recipe = recipe.with_total_steps(args.steps)
    work = out / WORK / "train"
    print(f"training {recipe.name} ({recipe.total_steps} steps) on {video.name} -> {work}", file=sys.stderr)
    result = train(recipe, video, scorers, work, device=args.device, resume=args.resume)
    if not result.finished or result.model_path is None:
        raise InputError(f"training stopped at step {result.step}; rerun with --resume to finish it")
    model = load_model_file(result.model_path)
    export_submission(out, model.model, model.latents, model.frames, video_name=video.name)
    return f"hnerv_pair {recipe.name}"


def _run(args) -> int:
    if args.steps is not None and args.steps < 1:
        raise InputError("--steps must be at least 1")
    video = resolve_video(args)
    scorers = scorers_from_args(args)
    out = args.output
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    basis = "videos" if sha256_file(video) == contract.CONTEST_VIDEO_SHA256 else "contest-per-frame"

    if args.method == "hnerv_pair":
        method = _learned(args, video, scorers, out)
    else:
        codec = classical.CODECS[args.method].with_settings(crf=args.crf, scale=args.scale)
        print(f"compressing {video} with {codec.name} (CRF {codec.crf}, scale {codec.scale})", file=sys.stderr)
        codec.compress(video, out)
        method = f"{codec.name} crf{codec.crf} x{codec.scale}"
    rows = [_row(method, _evaluate(out, video, scorers, basis))]

    if not args.no_baseline and args.method != "x265":
        base = classical.X265_BASELINE
        folder = out / WORK / "baseline-x265"
        print(f"baseline: {base.name} CRF {base.crf} scale {base.scale} -> {folder}", file=sys.stderr)
        base.compress(video, folder)
        rows.append(_row(f"x265 baseline_fast", _evaluate(folder, video, scorers, basis)))

    print(table(rows))
    if len(rows) == 2:
        print(f"score ratio {rows[0]['method']} / x265 baseline = {rows[0]['score'] / rows[1]['score']:.3f}")
    if basis == "contest-per-frame":
        print(f"rate = archive bytes / (the contest's bytes per frame x {video.name}'s frames)")
    print(f"submission: {out}  (report.txt and score.json inside; work/ holds training and the baseline)")
    return 0


def commands() -> list[Command]:
    return [Command("compress", "compress a video into a contest submission folder, inflate it, score it",
                    _configure, _run)]
