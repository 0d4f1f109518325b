"""``tac scorers train-proxy``: train the proxy scorers, reproducibly. Importing this does not import torch."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tac_core.errors import InputError
from tac_core.registry import Command


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                        help="folder for proxy_segnet.safetensors, proxy_posenet.safetensors and "
                             "metrics.json (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data sampling and training (default 0)")
    parser.add_argument("--frames", type=int, default=192,
                        help="rendered training frames (pairs x 2; default 192); each pair also gets "
                             "3 codec-degraded versions")
    parser.add_argument("--epochs", type=int, default=4,
                        help="SegNet passes over the versions (PoseNet gets 3x as many; default 4)")
    parser.add_argument("--max-steps", type=int, help="stop each network after this many steps (smoke tests)")
    parser.add_argument("--heldout-seeds", type=int, default=10,
                        help="held-out scenes (seeds 0..N-1) to evaluate on afterwards; 0 skips (default 10)")
    parser.add_argument("--heldout-seconds", type=float, default=2.0,
                        help="length of each held-out clip (default 2 s = 20 pairs)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--data-dir", type=Path, help="cache of the prepared training set "
                        "(default $TAC_CACHE_DIR/proxy-data or ~/.cache/tac/proxy-data)")


def _run(args: argparse.Namespace) -> int:
    import torch

    from tac_torch import proxy, proxy_train

    for name in ("seed", "epochs", "heldout_seeds"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be non-negative, got {getattr(args, name)}")
    if args.threads < 1 or (args.max_steps is not None and args.max_steps < 1):
        raise InputError("--threads and --max-steps must be at least 1")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data_cfg = proxy_train.DataConfig(frames=args.frames, seed=args.seed)
    data = proxy_train.prepare(data_cfg, args.data_dir)
    prepared = time.perf_counter()
    cfg = proxy_train.TrainConfig(epochs=args.epochs, seed=args.seed, max_steps=args.max_steps)
    segnet = proxy_train.train_segnet(data, cfg)
    seg_done = time.perf_counter()
    posenet = proxy_train.train_posenet(data, cfg)
    trained = time.perf_counter()
    shas = {proxy.SEGNET_FILE: proxy_train.save(segnet, out / proxy.SEGNET_FILE),
            proxy.POSENET_FILE: proxy_train.save(posenet, out / proxy.POSENET_FILE)}
    for name, sha in shas.items():
        print(f"{out / name}  {(out / name).stat().st_size:,} bytes  sha256 {sha}")
    metrics = {"command": "tac scorers train-proxy " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items())
                   if k in ("seed", "frames", "epochs", "max_steps") and v is not None),
               "sha256": shas, "data": str(data),
               "wall_s": {"data": round(prepared - started, 1), "segnet": round(seg_done - prepared, 1),
                          "posenet": round(trained - seg_done, 1)},
               "threads": args.threads}
    if args.heldout_seeds:
        from tac_torch.proxy_eval import heldout, parameter_summary
        from tac_torch.scorers import load_scorers

        metrics["parameters"] = parameter_summary()
        metrics["heldout"] = heldout({"proxy": load_scorers("proxy", out)}, range(args.heldout_seeds),
                                     args.heldout_seconds)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"{out / 'metrics.json'}  ({time.perf_counter() - started:.0f} s in all)")
    return 0


def commands() -> list[Command]:
    """The proxy-scorer commands of the torch backend."""
    return [Command(name="scorers train-proxy",
                    help="train the proxy SegNet and PoseNet on synthetic scenes with codec-artifact "
                         "augmentation (fixed seed) and evaluate them on held-out scenes",
                    configure=_configure, run=_run)]
