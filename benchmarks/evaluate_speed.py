"""tac's evaluator against a plain sequential implementation of the contract, same inputs, one run.

    python benchmarks/evaluate_speed.py [--frames 64] [--scorers DIR]

Prints seconds for: the plain evaluator (decode a batch, then score it, as the official
harness does), tac's first evaluation (empty cache), tac's repeated evaluation (cached
reference outputs); the ratios plain/tac; whether every result is equal; and the peak
memory of each (a subprocess each, networks warmed up at the batch shape before timing).
Targets: >= 1.3x first, >= 1.8x repeated, peak < 3 GB at 1200 frames. Scorers are stand-ins
unless --scorers is given: the timing is the same for any weights of the official architectures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from tac_torch.scorers import load_scorers
mode, video, raw, cache, scorers_dir = sys.argv[1:6]
s = load_scorers("contest", Path(scorers_dir)) if scorers_dir else load_scorers("stand-in", seed=0)
import numpy as np
s.outputs(np.zeros((16, 2, 874, 1164, 3), np.uint8))   # warm-up at the batch shape, outside the timing
t = time.perf_counter()
if mode == "plain":
    from tac_torch.reference import evaluate_plain
    pose, seg, n = evaluate_plain(Path(video), Path(raw), s)
else:
    from tac_torch.evaluate import evaluate
    c = evaluate(Path(raw).parent.parent, Path(video).parent, s, cache_dir=Path(cache), write=False,
                 show_progress=False).components
    pose, seg, n = c.pose, c.seg, c.samples
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "pose": pose, "seg": seg, "samples": n, "peak_bytes": peak}))
"""


def make_inputs(root: Path, frames: int) -> tuple[Path, Path]:
    from tac_core import video
    from tac_core.scenes import SceneConfig, write_clip

    videos = root / "videos"
    videos.mkdir()
    clip = videos / "clip.mkv"
    write_clip(clip, SceneConfig(seed=7, seconds=frames / 20))
    (videos / "clip.npz").unlink(missing_ok=True)   # the folder holds the video alone
    sub = root / "sub"
    (sub / "inflated").mkdir(parents=True)
    (sub / "archive.zip").write_bytes(b"\0" * 100_000)
    rng = np.random.default_rng(0)
    degraded = (np.clip(f + rng.normal(0, 4, f.shape), 0, 255).astype(np.uint8) for f in video.decode_frames(clip))
    video.write_raw(sub / "inflated" / "clip.raw", degraded)
    return clip, sub / "inflated" / "clip.raw"


def run(mode: str, clip: Path, raw: Path, cache: Path, scorers: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(clip), str(raw), str(cache), scorers],
                          capture_output=True, text=True, env={**os.environ, "TAC_PROGRESS": "0"})
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64, help="clip length (1200 = the contest's)")
    parser.add_argument("--scorers", default="", help="folder with the official weights (default: stand-ins)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip, raw = make_inputs(root, args.frames)
        cache = root / "cache"
        plain = run("plain", clip, raw, cache, args.scorers)
        first = run("tac", clip, raw, cache, args.scorers)
        repeat = run("tac", clip, raw, cache, args.scorers)
    same = all((r["pose"], r["seg"], r["samples"]) == (plain["pose"], plain["seg"], plain["samples"])
               for r in (first, repeat))
    print(f"clip: {args.frames} frames of 1164x874 ({plain['samples']} samples), "
          f"scorers: {'official' if args.scorers else 'stand-in'}, {os.cpu_count()} cores")
    print(f"plain sequential   {plain['seconds']:8.1f} s   peak {plain['peak_bytes'] / 2**30:.2f} GiB")
    print(f"tac, first         {first['seconds']:8.1f} s   peak {first['peak_bytes'] / 2**30:.2f} GiB   "
          f"speed-up {plain['seconds'] / first['seconds']:.2f}x (target >= 1.3x)")
    print(f"tac, repeated      {repeat['seconds']:8.1f} s   peak {repeat['peak_bytes'] / 2**30:.2f} GiB   "
          f"speed-up {plain['seconds'] / repeat['seconds']:.2f}x (target >= 1.8x)")
    print(f"results identical to the plain evaluator: {same}  "
          f"(pose {first['pose']:.8g}, seg {first['seg']:.8g})")


if __name__ == "__main__":
    main()
