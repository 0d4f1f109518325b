"""``tac compress``: a video in, a submission folder out, inflated through its own inflate.sh,
evaluated, and a score table printed.

Without VIDEO it uses the embedded default (a synthetic driving clip). The
methods available now are the classical codecs (``--codec x265`` is the
contest's baseline_fast settings; ``--codec av1`` SVT-AV1).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tac_core import classical, contract, harness, submission
from tac_core.errors import InputError
from tac_core.files import sha256_file, write_atomic
from tac_core.registry import Command
from tac_torch.evaluate_cmd import add_scorer_arguments, scorers_from_args

PRESET_SECONDS = {"demo": 10.0, "contest": 60.0}


def _configure(parser) -> None:
    parser.add_argument("video", nargs="?", type=Path,
                        help="video to compress (default: the embedded synthetic driving clip)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="submission folder to write")
    parser.add_argument("--preset", choices=sorted(PRESET_SECONDS), default="demo",
                        help="demo: a 10 s default clip; contest: 60 s (default demo)")
    parser.add_argument("--seconds", type=float, help="length of the default clip (overrides the preset)")
    parser.add_argument("--codec", choices=sorted(classical.CODECS), default="x265",
                        help="x265 = the contest's baseline_fast settings (default); av1 = SVT-AV1")
    parser.add_argument("--crf", type=int, help="override the codec's CRF")
    parser.add_argument("--scale", type=float, help="override the codec's downscale factor")
    add_scorer_arguments(parser)


def resolve_video(args) -> Path:
    """The user's VIDEO, or the embedded default clip for the preset."""
    if args.video is not None:
        if not args.video.is_file():
            raise InputError(f"{args.video}: video not found")
        return args.video
    from tac_core.scenes import default_clip

    seconds = args.seconds if args.seconds is not None else PRESET_SECONDS[args.preset]
    if seconds <= 0:
        raise InputError("--seconds must be positive")
    return default_clip(seconds=seconds)


def table(rows: list[dict]) -> str:
    """A fixed-width score table; every row names its evidence axis."""
    head = f"{'method':<22}{'seg':>12}{'pose':>12}{'bytes':>12}{'rate':>12}{'score':>9}  axis"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<22}{r['seg']:>12.6f}{r['pose']:>12.6f}{r['bytes']:>12,}"
                     f"{r['rate']:>12.6f}{r['score']:>9.3f}  {r['axis']}")
    return "\n".join(lines)


def _run(args) -> int:
    from tac_torch.evaluate import evaluate

    video_path = resolve_video(args)
    codec = classical.CODECS[args.codec].with_settings(crf=args.crf, scale=args.scale)
    scorers = scorers_from_args(args)
    out = args.output
    print(f"compressing {video_path} with {codec.name} (CRF {codec.crf}, scale {codec.scale}) -> {out}",
          file=sys.stderr)
    codec.compress(video_path, out)
    harness.run_inflate(out, [video_path.name])
    contest_clip = sha256_file(video_path) == contract.CONTEST_VIDEO_SHA256
    basis = "videos" if contest_clip else "contest-per-frame"
    with_names = out / ".names.txt"
    write_atomic(with_names, video_path.name + "\n")
    try:
        result = evaluate(out, video_path.parent, scorers, names_file=with_names, rate_basis=basis)
    finally:
        with_names.unlink(missing_ok=True)
    c = result.components
    print(table([{"method": f"{codec.name} crf{codec.crf} x{codec.scale}", "seg": c.seg, "pose": c.pose,
                  "bytes": c.archive_bytes, "rate": c.rate, "score": c.score, "axis": result.record.axis}]))
    if basis == "contest-per-frame":
        print(f"rate = archive bytes / (contest bytes per frame x {video_path.name}'s frames)")
    print(f"submission: {out}  (report.txt, score.json inside)")
    return 0


def commands() -> list[Command]:
    return [Command("compress", "compress a video into a contest submission folder, inflate it, score it",
                    _configure, _run)]
