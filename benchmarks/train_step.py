"""One ``mask_warp`` training step through the contest chain: the linear camera path against the
exact one, and the trainer's whole step.

    python benchmarks/train_step.py [--steps 8] [--pairs 1] [--scorers proxy|stand-in] [--device cpu|cuda]
                                    [--preset demo|contest|recipe.toml]
                                    [--model OUT/work/mask_warp/steps/lowbit/model.pt]

Builds the ``--preset`` recipe's renderer (default demo) with seeded weights and random class maps, poses and
targets (a step's cost does not depend on their values), then times full training steps
(render, chain, the score loss, backward) with ``ContestChain(path="exact")`` and
``path="linear"``, after one warm-up step each, and prints milliseconds per pair and the ratio
linear / exact, plus how often the two paths' SegNet classes agree on the same rendered pairs.
It then times ``MaskWarpTrainer``'s own steps (the same recipe at ``--pairs`` pairs a step, on
the linear path), in the float phase and in the QAT phase: these add the rate term, Adam and,
in QAT, the fake quantisation, and print their ratio to the bare linear step and how many
top-level operations a step runs. On a GPU, where a small network's step is bound by launching
its operations, these show what the trainer's own work costs.
With ``--model`` (a ``mask_warp`` model file a ``tac compress`` run wrote), the agreement is
measured on that trained renderer's first 16 pairs instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _timed_steps(net, chain, maps, poses, seg_t, pose_t, steps: int) -> float:
    import torch

    from tac_torch.losses import score_loss

    sync = torch.cuda.synchronize if maps.is_cuda else (lambda: None)

    def step():
        out = chain(net(maps, poses))
        score_loss(out.pose, out.seg_logits, pose_t, seg_t)["loss"].backward()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


def _trainer_seconds(scorers, device: str, pairs: int, steps: int, preset: str) -> dict[str, float]:
    """Seconds per ``MaskWarpTrainer`` step in the float and the QAT phase (after a warm-up step each)."""
    import dataclasses
    import tempfile

    import numpy as np
    import torch

    from tac_torch.chain import Targets
    from tac_torch.mask_warp_train import MaskWarpTrainer, load_config

    config = dataclasses.replace(load_config(preset), batch_pairs=pairs, camera_path="linear")
    rng = np.random.default_rng(0)
    n = max(16, 2 * pairs)
    targets = Targets(seg=rng.integers(0, 5, (n, 384, 512), dtype=np.uint8),
                      pose=rng.standard_normal((n, 12)).astype(np.float32))
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = MaskWarpTrainer(config, None, scorers, Path(tmp), device=device, targets=targets,
                                  show_progress=False)
        for phase, start in (("float", 0), ("qat", config.float_steps)):
            trainer.step = start
            trainer.train_step()
            sync()
            begin = time.perf_counter()
            for _ in range(steps):
                trainer._step()
            sync()
            out[phase] = (time.perf_counter() - begin) / steps
            out[f"{phase} ops"] = _operations(trainer._step)
    return out


def _operations(fn) -> int:
    """Top-level ATen operations one call of ``fn`` runs: on a GPU, each is at least one launch."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events()
               if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per path (default 8)")
    parser.add_argument("--pairs", type=int, default=1, help="pairs per step (default 1, as the demo)")
    parser.add_argument("--scorers", default="proxy", choices=("proxy", "stand-in"))
    parser.add_argument("--preset", default="demo", help="mask_warp recipe whose network is timed: demo, contest or a "
                        "TOML file (default demo)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, help="a mask_warp model file: measure the agreement on its pairs")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.pairs < 1:
        parser.error("--steps and --pairs must be at least 1")

    import torch

    from tac_torch.chain import ContestChain
    from tac_torch.mask_warp import MaskWarp
    from tac_torch.mask_warp_train import load_config
    from tac_torch.scorers import load_scorers, seg_classes

    scorers = load_scorers(args.scorers, device=args.device)
    spec = load_config(args.preset).renderer_spec()
    net = MaskWarp(spec, seed=0).to(args.device)
    g = torch.Generator().manual_seed(0)
    b, hw = args.pairs, (spec["out_h"], spec["out_w"])
    maps = torch.randint(0, spec["classes"], (b, *hw), generator=g).to(args.device)
    poses = torch.randn(b, spec["pose_dim"], generator=g).to(args.device)
    seg_t = torch.randint(0, 5, (b, 384, 512), generator=g).to(args.device)
    pose_t = torch.randn(b, 12, generator=g).to(args.device)
    chains = {path: ContestChain(scorers, path=path) for path in ("exact", "linear")}
    seconds = {path: _timed_steps(net, chain, maps, poses, seg_t, pose_t, args.steps) for path, chain in chains.items()}
    which = "random renderer"
    if args.model is not None:
        from tac_torch.mask_warp_refine import load_model, lowbit

        low = lowbit(load_model(args.model))
        net, maps, poses = low.model.to(args.device), torch.from_numpy(low.class_maps[:16]).to(args.device), \
            low.poses[:16].to(args.device)
        which = f"{len(maps)} pairs of {args.model}"
    with torch.no_grad():
        agree = []
        for i in range(len(maps)):               # one pair at a time: the exact path at camera size is large
            rendered = net(maps[i:i + 1], poses[i:i + 1])
            agree.append((seg_classes(chains["exact"](rendered).seg_logits)
                          == seg_classes(chains["linear"](rendered).seg_logits)).float().mean().item())
        agree = sum(agree) / len(agree)
    trainer = _trainer_seconds(scorers, args.device, b, args.steps, args.preset)
    for path, s in seconds.items():
        print(f"{path:>6} path: {1000 * s / b:7.1f} ms per pair ({args.steps} steps of {b} pair(s), "
              f"{args.scorers} scorers)")
    for phase in ("float", "qat"):
        s = trainer[phase]
        print(f"trainer step ({phase}): {1000 * s / b:7.1f} ms per pair, {s / seconds['linear']:.2f}x the bare linear "
              f"step, {trainer[phase + ' ops']} operations")
    print(f"SegNet classes of the two paths agree on {100 * agree:.3f}% of pixels ({which})")
    print(f"ratio linear / exact = {seconds['linear'] / seconds['exact']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
