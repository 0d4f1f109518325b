"""Where a ``mask_warp`` run's SegNet errors lie: by distance to a class boundary, by the original's margin, by class.

    python benchmarks/seg_errors.py OUT [--step maps|lowbit|pose_field] [--scorers-dir DIR] [--pairs N]

Reads a ``tac compress`` run's model after ``--step`` (default ``maps``, the class maps after
steering) and its targets, renders what the archive inflates to (the exact path), runs SegNet on
each pair's second frame, and compares with the targets (SegNet on the original). It runs SegNet on
the original video too, for the margin of its best class over the runner-up at every pixel. It
prints, with each bin's share of all pixels and of the errors:

- the distance from an error to the nearest pixel of another class in the target map (0: a
  4-neighbour differs), by dilation up to 3;
- the original's margin (logits) at the errors;
- the (target -> rendered) class pairs that make most errors, and how the errors spread over the
  pairs (the worst tenth's share) and over the frame's rows (thirds).

Scorers: the shipped proxy ones, or the official ones from ``--scorers-dir``; the report's first
line names them. With the proxy scorers the numbers describe the proxy SegNet only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

MARGIN_EDGES = (0.5, 1.0, 2.0, 4.0)
MAX_DISTANCE = 3


def boundary_distance(maps: np.ndarray, limit: int = MAX_DISTANCE) -> np.ndarray:
    """Per pixel of ``maps`` (B, H, W): 4-neighbour steps to the nearest pixel with a neighbour of
    another class (0 on such a pixel), capped at ``limit``."""
    p = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode="edge")
    c = p[:, 1:-1, 1:-1]
    edge = (c != p[:, :-2, 1:-1]) | (c != p[:, 2:, 1:-1]) | (c != p[:, 1:-1, :-2]) | (c != p[:, 1:-1, 2:])
    dist = np.full(maps.shape, limit, np.uint8)
    reached = edge
    for d in range(limit):
        dist[reached & (dist == limit)] = d
        q = np.pad(reached, ((0, 0), (1, 1), (1, 1)))
        reached = q[:, 1:-1, 1:-1] | q[:, :-2, 1:-1] | q[:, 2:, 1:-1] | q[:, 1:-1, :-2] | q[:, 1:-1, 2:]
    return dist


def _table(title: str, labels: list[str], counts: np.ndarray, errors: np.ndarray) -> list[str]:
    lines = [f"{title}:", f"  {'bin':>12} {'pixels':>8} {'errors':>8} {'error rate':>11}"]
    for label, n, e in zip(labels, counts, errors):
        lines.append(f"  {label:>12} {n / counts.sum():8.2%} {e / max(errors.sum(), 1):8.2%} {e / max(n, 1):11.2e}")
    return lines


def analyse(seg_rendered: np.ndarray, seg_target: np.ndarray, margin: np.ndarray) -> list[str]:
    """The report's lines for SegNet classes on the rendered and original second frames (B, H, W)
    and the original's per-pixel margin."""
    wrong = seg_rendered != seg_target
    n_err = int(wrong.sum())
    lines = [f"seg disagreement {wrong.mean():.6f} ({n_err} pixels, {n_err / len(wrong):.0f} a pair)"]
    dist = boundary_distance(seg_target)
    labels = [str(d) for d in range(MAX_DISTANCE)] + [f">={MAX_DISTANCE}"]
    lines += _table("distance to a class boundary of the target", labels,
                    np.bincount(dist.ravel(), minlength=MAX_DISTANCE + 1),
                    np.bincount(dist[wrong], minlength=MAX_DISTANCE + 1))
    bins = np.digitize(margin, MARGIN_EDGES)
    edges = (0.0,) + MARGIN_EDGES
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:])] + [f">={MARGIN_EDGES[-1]:g}"]
    lines += _table("original's margin (logits)", labels, np.bincount(bins.ravel(), minlength=len(labels)),
                    np.bincount(bins[wrong], minlength=len(labels)))
    pairs = np.unique(np.stack([seg_target[wrong], seg_rendered[wrong]], 1), axis=0, return_counts=True)
    order = np.argsort(-pairs[1])[:6]
    lines.append("class pairs (target -> rendered): " + ", ".join(
        f"{a}->{b} {c / max(n_err, 1):.1%}" for (a, b), c in zip(pairs[0][order], pairs[1][order])))
    per_pair = np.sort(wrong.reshape(len(wrong), -1).sum(1))[::-1]
    worst = max(1, len(per_pair) // 10)
    thirds = np.array_split(wrong.sum(axis=(0, 2)), 3)
    lines.append(f"the worst tenth of the pairs ({worst}) holds {per_pair[:worst].sum() / max(n_err, 1):.1%} of "
                 f"the errors; rows top/middle/bottom: " + "/".join(f"{t.sum() / max(n_err, 1):.0%}" for t in thirds))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a tac compress output folder (mask_warp)")
    parser.add_argument("--step", default="maps", choices=("lowbit", "maps", "tto", "finetune", "sidecar",
                                                           "pose_field"))
    parser.add_argument("--scorers-dir", type=Path, help="official scorer weights (default: the proxy scorers)")
    parser.add_argument("--pairs", type=int, help="only the first N pairs")
    args = parser.parse_args(argv)
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be at least 1")

    import torch

    from tac_core import contract
    from tac_core.errors import InputError
    from tac_core.video import decode_frames, pair_batches
    from tac_torch import preprocess
    from tac_torch.compress_steps import load_targets
    from tac_torch.mask_warp import render_uint8
    from tac_torch.mask_warp_refine import load_model, lowbit
    from tac_torch.scorers import load_scorers, seg_classes

    work = args.out / "work" / "mask_warp"
    try:
        run = json.loads((work / "run.json").read_text())
        model_path = work / "steps" / args.step / "model.pt"
        if not (work / "steps" / args.step / "step.json").is_file():
            raise InputError(f"{model_path.parent}: the {args.step} step has not finished")
        m = lowbit(load_model(model_path))
        targets, _ = load_targets(work / "steps" / "targets")
        scorers = load_scorers("contest", args.scorers_dir) if args.scorers_dir else load_scorers("proxy")
    except (OSError, ValueError) as exc:
        print(f"seg_errors: {args.out}: not a finished mask_warp run ({exc})", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"seg_errors: {exc}", file=sys.stderr)
        return 2
    n = len(targets.seg) if args.pairs is None else min(args.pairs, len(targets.seg))

    def seg_logits(pairs: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            frames = preprocess.frames_float(preprocess.as_pairs_tensor(pairs))
            return scorers.segnet(preprocess.segnet_input(frames)).float()

    rendered = []
    maps = torch.from_numpy(m.class_maps[:n]).long()
    for pairs in render_uint8(m.model, maps, m.poses[:n], output_bias=None if m.output_bias is None else
                              m.output_bias[:n], pose_field=None if m.pose_field is None else m.pose_field[:n]):
        rendered.append(seg_classes(seg_logits(pairs.cpu().numpy())).to(torch.uint8).numpy())
    margins, done = [], 0
    for pairs in pair_batches(decode_frames(Path(run["meta"]["video"]), contract.CAMERA_HW)):
        if done >= n:
            break
        margins.append(scorers.seg_leads(pairs[:n - done]).astype(np.float32))
        done += len(margins[-1])
    print(f"{args.out} ({args.step}, {n} pairs, {scorers.kind} scorers)")
    for line in analyse(np.concatenate(rendered), targets.seg[:n], np.concatenate(margins)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
