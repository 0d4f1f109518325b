"""``tac train VIDEO -o OUT --preset demo|contest|FILE.toml``: train an hnerv_pair model on a clip.

Writes checkpoints under OUT/checkpoints/ and, at the end, OUT/model.pt.
``--resume`` continues the last checkpoint exactly; Ctrl-C leaves the last
complete checkpoint in place and prints the command that resumes it. Under
``torchrun --nproc-per-node N`` the same command trains with DDP.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tac_core.errors import InputError
from tac_core.registry import Command
from tac_torch.evaluate_cmd import add_scorer_arguments, scorers_from_args


def _configure(parser) -> None:
    parser.add_argument("video", type=Path, help="video to train on (1164x874 frames)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for checkpoints and model.pt")
    parser.add_argument("--preset", default="demo",
                        help="demo, contest or a recipe TOML file (default demo)")
    parser.add_argument("--steps", type=int,
                        help="stop after this many steps in all (a checkpoint is written; --resume goes on)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT")
    add_scorer_arguments(parser)


def _resume_command(args) -> str:
    return shlex.join(["tac", "train", str(args.video), "-o", str(args.output), "--preset", str(args.preset),
                       *(["--scorers", str(args.scorers)] if args.scorers else []),
                       "--device", args.device, "--resume"])


def _run(args) -> int:
    from tac_torch import checkpoint as ckpt
    from tac_torch.recipe import load_recipe
    from tac_torch.train import train

    if args.steps is not None and args.steps < 1:
        raise InputError("--steps must be at least 1")
    if not args.video.is_file():
        raise InputError(f"{args.video}: video not found")
    recipe = load_recipe(args.preset)
    last = ckpt.latest_checkpoint(args.output)
    if args.resume and last is not None:          # refuse a foreign checkpoint before any slow work
        ckpt.load_checkpoint(last, recipe.fingerprint(), recipe_name=recipe.name)
    scorers = scorers_from_args(args)
    try:
        result = train(recipe, args.video, scorers, args.output, device=args.device, resume=args.resume,
                       stop_after=args.steps)
    except KeyboardInterrupt:
        last = ckpt.latest_checkpoint(args.output)
        where = f"the last complete checkpoint is {last}" if last else "no checkpoint was written yet"
        print(f"tac: interrupted; {where}; resume with: {_resume_command(args)}", file=sys.stderr)
        return 130
    if not result.finished:
        print(f"stopped after step {result.step} of {recipe.total_steps}; checkpoint {result.checkpoint}; "
              f"resume with: {_resume_command(args)}")
        return 0
    scores = ", ".join(f"{k} {v:.4f}" for k, v in (result.scores or {}).items())
    print(f"trained {result.step} steps; kept the {result.chosen!r} weights (scores of the quantised "
          f"candidates: {scores}); model: {result.model_path}")
    return 0


def commands() -> list[Command]:
    return [Command("train", "train an hnerv_pair model on a video with a TOML recipe (resumable, torchrun-ready)",
                    _configure, _run)]
