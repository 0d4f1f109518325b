"""One ``mask_warp`` training step through the contest chain: the linear camera path against the exact one.

    python benchmarks/train_step.py [--steps 8] [--pairs 1] [--scorers proxy|stand-in] [--device cpu|cuda]
                                    [--model OUT/work/mask_warp/steps/lowbit/model.pt]

Builds the demo's default-spec renderer with seeded weights and random class maps, poses and
targets (a step's cost does not depend on their values), then times full training steps
(render, chain, the score loss, backward) with ``ContestChain(path="exact")`` and
``path="linear"``, after one warm-up step each, and prints milliseconds per pair and the ratio
linear / exact, plus how often the two paths' SegNet classes agree on the same rendered pairs.
With ``--model`` (a ``mask_warp`` model file a ``tac compress`` run wrote), the agreement is
measured on that trained renderer's first 16 pairs instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _timed_steps(net, chain, maps, poses, seg_t, pose_t, steps: int) -> float:
    from tac_torch.losses import score_loss

    def step():
        out = chain(net(maps, poses))
        score_loss(out.pose, out.seg_logits, pose_t, seg_t)["loss"].backward()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per path (default 8)")
    parser.add_argument("--pairs", type=int, default=1, help="pairs per step (default 1, as the demo)")
    parser.add_argument("--scorers", default="proxy", choices=("proxy", "stand-in"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, help="a mask_warp model file: measure the agreement on its pairs")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.pairs < 1:
        parser.error("--steps and --pairs must be at least 1")

    import torch

    from tac_torch.chain import ContestChain
    from tac_torch.mask_warp import MaskWarp, make_spec
    from tac_torch.scorers import load_scorers, seg_classes

    scorers = load_scorers(args.scorers, device=args.device)
    spec = make_spec()
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
    for path, s in seconds.items():
        print(f"{path:>6} path: {1000 * s / b:7.1f} ms per pair ({args.steps} steps of {b} pair(s), {args.scorers} scorers)")
    print(f"SegNet classes of the two paths agree on {100 * agree:.3f}% of pixels ({which})")
    print(f"ratio linear / exact = {seconds['linear'] / seconds['exact']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
