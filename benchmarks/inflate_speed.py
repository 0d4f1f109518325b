"""Inflate speed of an ``hnerv_pair`` submission against the time to write the same raw bytes.

    python benchmarks/inflate_speed.py [--frames 100] [--device cpu|cuda]

Builds a default-spec decoder with SEEDED RANDOM weights and latents (the speed of a
decoder does not depend on its values), exports it as a submission for N frames, then
times: the runtime's inflate in this process, the same through the submission's own
inflate.sh (a fresh Python: imports and archive decoding included), and writing N
zero frames with ``numpy.tofile`` (the floor any inflate pays for its output). Prints
seconds per full-resolution (874x1164) frame and the ratio to the raw write, plus the
in-process inflate's CPU time (on a shared machine, wall time includes other people's load).
Target: <= 0.10 s/frame for the default decoder on the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _raw_write_seconds(path: Path, frames: int) -> float:
    import numpy as np

    from tac_core import contract

    zeros = np.zeros((min(frames, 16), *contract.CAMERA_HW, 3), np.uint8)
    t = time.perf_counter()
    with open(path, "wb") as f:
        left = frames
        while left:
            n = min(left, len(zeros))
            zeros[:n].tofile(f)
            left -= n
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames to inflate (default 100)")
    parser.add_argument("--device", default="cpu", help="device of the in-process inflate (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be positive")

    import torch

    from tac_core import contract, harness
    from tac_runtime import hnerv
    from tac_torch import renderers
    from tac_torch.export import export_submission

    spec = renderers.make_spec()
    model = renderers.HnervPair(spec, seed=args.seed).eval()
    latents = renderers.init_latents(-(-args.frames // 2), spec, seed=args.seed + 1)
    print(f"hnerv_pair default spec ({renderers.param_count(spec):,} parameters), SEEDED RANDOM weights "
          f"and latents (timing only), {args.frames} frames, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sub = export_submission(root / "submissions" / "bench", model, latents, args.frames)
        print(f"archive.zip: {(sub / contract.ARCHIVE_NAME).stat().st_size:,} bytes")
        (root / "m").mkdir()
        from tac_core.archive import unpack_zip

        unpack_zip((sub / contract.ARCHIVE_NAME).read_bytes(), root / "m")
        member = root / "m" / "0.tac"

        t, cpu = time.perf_counter(), time.process_time()
        hnerv.inflate_member(member, root / "inproc.raw", args.device)
        inproc, cpu = time.perf_counter() - t, time.process_time() - cpu
        (root / "inproc.raw").unlink()

        t = time.perf_counter()
        harness.run_inflate(sub, [contract.CONTEST_VIDEO_NAME], cwd=root)
        script = time.perf_counter() - t
        raw = _raw_write_seconds(root / "zeros.raw", args.frames)

    n = args.frames
    print(f"{'step':<34}{'s total':>9}{'s/frame':>9}{'x raw write':>13}")
    for label, s in ((f"inflate in process ({args.device})", inproc), ("inflate.sh (fresh python, cpu/cuda)", script),
                     ("raw write of the same bytes", raw)):
        print(f"{label:<34}{s:>9.2f}{s / n:>9.4f}{s / raw:>13.1f}")
    print(f"in-process CPU time {cpu / n:.4f} s/frame over {torch.get_num_threads()} threads "
          f"(wall above {cpu / max(inproc, 1e-9):.2f}x: below the thread count means other load shared the cores)")
    print(f"target <= 0.10 s/frame: {'met' if inproc / n <= 0.10 else 'NOT met'} in process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
