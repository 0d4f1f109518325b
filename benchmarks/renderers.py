"""Both learned renderers, with and without test-time optimisation and sidecars, on one clip and
one set of scorers, in one run.

    clip (the embedded synthetic clip, --seconds) --tac compress's pipelines (tac_torch.compress_steps)-->
      hnerv_pair: train | + latent TTO | + output-bias sidecar | + pose field
      mask_warp:  lowbit | + near-lossless maps | + pose TTO | + QAT finetune | + output-bias sidecar
                  | + pose field
    each row: that step's model packaged, inflated through its own inflate.sh, evaluated

The table gives seg, pose, bytes, rate and score per row (every score labelled with its axis) and
each row's score relative to its renderer's first row, measured in the same run.

    .venv/bin/python benchmarks/renderers.py --seconds 2 --steps 20     # a few minutes on 2 cores
    .venv/bin/python benchmarks/renderers.py --seconds 10 --steps 90 --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from tac_core import contract
from tac_core.files import sha256_file
from tac_core.pipeline import run_pipeline

HNERV = [("train", "no refinement"), ("tto", "+ latent TTO"), ("sidecar", "+ output-bias sidecar"),
         ("pose_field", "+ pose field")]
MASK_WARP = [("lowbit", "no refinement"), ("maps", "+ near-lossless maps"), ("tto", "+ pose TTO"),
             ("finetune", "+ QAT finetune"), ("sidecar", "+ output-bias sidecar"), ("pose_field", "+ pose field")]


def package_hnerv(step_dir: Path, folder: Path, video_name: str) -> Path:
    from tac_torch.export import export_submission, load_model_file

    mf = load_model_file(step_dir / "model.pt")
    return export_submission(folder, mf.model, mf.latents, mf.frames, video_name=video_name,
                             output_bias=mf.output_bias, pose_field=mf.pose_field)


def package_mask_warp(step_dir: Path, folder: Path, video_name: str) -> Path:
    from tac_core.export import write_submission
    from tac_torch.export import member_name
    from tac_torch.mask_warp_refine import load_model

    return write_submission(folder, member_name(video_name), load_model(step_dir / "model.pt").archive())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the synthetic clip")
    parser.add_argument("--steps", type=int, default=20, help="training steps per renderer")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each TTO and of each sidecar search")
    parser.add_argument("--finetune", type=int, default=10, help="mask_warp QAT fine-tune steps")
    parser.add_argument("--scorers", default="proxy", help="proxy (default), stand-in or a folder of official weights")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()

    from tac_core.scenes import default_clip
    from tac_torch import compress_steps
    from tac_torch.mask_warp_train import Finetune, load_config
    from tac_torch.recipe import Refine, load_recipe
    from tac_torch.scorers import load_scorers

    scorers = (load_scorers(args.scorers) if args.scorers in ("proxy", "stand-in")
               else load_scorers("contest", Path(args.scorers)))
    video = default_clip(seconds=args.seconds)
    basis = "videos" if sha256_file(video) == contract.CONTEST_VIDEO_SHA256 else "contest-per-frame"
    job = compress_steps.Job(video, scorers, "cpu", basis, "benchmarks/renderers.py")
    tto = Refine(max_epochs=args.epochs, lr=1.0)
    side = Refine(max_epochs=args.epochs, lr=2.0)
    recipe = dataclasses.replace(load_recipe("demo").with_total_steps(args.steps), tto=tto, sidecar=side)
    config = dataclasses.replace(load_config("demo").with_total_steps(args.steps), tto=tto, sidecar=side,
                                 finetune=Finetune(qat_steps=args.finetune))
    chains = [("hnerv_pair", compress_steps.hnerv_steps(job, recipe), HNERV, package_hnerv),
              ("mask_warp", compress_steps.mask_warp_steps(job, config), MASK_WARP, package_mask_warp)]

    with tempfile.TemporaryDirectory(prefix="tac-renderers-") as tmp:
        root = args.work or Path(tmp)
        rows = []
        for renderer, steps, variants, package in chains:
            t0 = time.monotonic()
            run = run_pipeline(root / renderer, steps, meta={"renderer": renderer, "method": f"benchmark {renderer}"})
            seconds = time.monotonic() - t0
            for step, label in variants:
                folder = package(run[step].dir, root / "variants" / f"{renderer}-{step}" / "src", video.name)
                summary = compress_steps.score_submission(job, folder, folder.parent / "scored")
                rows.append({"renderer": renderer, "variant": label, **summary})
            print(f"{renderer}: pipeline {seconds:.0f} s", flush=True)

    print(f"\nclip: {video.name} ({args.seconds:g} s), scorers: {scorers.kind}, {args.steps} training steps, "
          f"{args.epochs} epoch(s) per TTO / sidecar search\n")
    head = "| renderer | variant | seg | pose | bytes | rate | score | vs first | axis |"
    print(head)
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    first: dict[str, float] = {}
    for r in rows:
        base = first.setdefault(r["renderer"], r["score"])
        print(f"| {r['renderer']} | {r['variant']} | {r['seg']:.6f} | {r['pose']:.6f} | {r['bytes']:,} | "
              f"{r['rate']:.6f} | {r['score']:.4f} | {r['score'] / base:.3f} | {r['axis']} |")


if __name__ == "__main__":
    main()
