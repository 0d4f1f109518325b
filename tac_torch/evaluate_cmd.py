"""``tac evaluate``: score a submission folder like the official evaluator, with provenance."""

from __future__ import annotations

from pathlib import Path

from tac_core import contract, submission
from tac_core.errors import InputError
from tac_core.registry import Command


def add_scorer_arguments(parser) -> None:
    """``--scorers DIR | --proxy | --stand-in [--seed K]`` and ``--device``: shared by commands that score."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scorers", type=Path, metavar="DIR",
                       help="folder with the official segnet.safetensors and posenet.safetensors")
    group.add_argument("--proxy", action="store_true",
                       help="tac's proxy scorers trained on synthetic scenes (the default without --scorers)")
    group.add_argument("--stand-in", action="store_true",
                       help="seeded stand-ins of the official architectures (plumbing checks only)")
    parser.add_argument("--seed", type=int, default=0, help="stand-in weights seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")


def scorers_from_args(args):
    """Load the scorers that ``add_scorer_arguments`` asked for."""
    from tac_torch.scorers import load_scorers

    if args.scorers is not None:
        return load_scorers("contest", args.scorers, device=args.device)
    if args.stand_in:
        return load_scorers("stand-in", None, device=args.device, seed=args.seed)
    return load_scorers("proxy", None, device=args.device)


def _configure(parser) -> None:
    parser.add_argument("--submission-dir", type=Path, required=True,
                        help="folder with archive.zip and inflated/<name>.raw")
    parser.add_argument("--video-dir", type=Path, required=True, help="folder of the original videos")
    parser.add_argument("--video-names-file", type=Path, help="names of the videos to score, one a line "
                        "(default: every video in --video-dir)")
    add_scorer_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=contract.BATCH_SIZE,
                        help=f"pairs per batch (default {contract.BATCH_SIZE}, the official order)")
    parser.add_argument("--rate-basis", choices=submission.RATE_BASES, default="folder",
                        help="rate denominator: the bytes of every file in --video-dir (official), of the "
                             "named videos only, or the contest video's bytes per frame (for other clips)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the originals' scorer outputs")
    parser.add_argument("--cache-dir", type=Path, help="where the originals' scorer outputs are cached")


def _run(args) -> int:
    from tac_torch.evaluate import evaluate

    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    scorers = scorers_from_args(args)
    result = evaluate(args.submission_dir, args.video_dir, scorers, names_file=args.video_names_file,
                      batch_size=args.batch_size, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                      rate_basis=args.rate_basis)
    print(result.report, end="")
    return 0


def commands() -> list[Command]:
    return [Command("evaluate", "score a submission folder (archive.zip + inflated/*.raw) against the originals",
                    _configure, _run)]
