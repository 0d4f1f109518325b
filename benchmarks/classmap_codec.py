"""Class-map coding: the ``classmap2`` and ``classmap`` stages against brotli, LZMA and AV1 on the same maps.

The maps are the synthetic driving clip's ground-truth class maps (the pair's
second frame, as ``mask_warp`` stores them), resized by nearest neighbour to
the renderer's 384x512. AV1 (SVT-AV1 through PyAV) codes them as a grey video
(class c -> luma 16 + 50c) and is read back by rounding to the nearest class;
its rows give the fraction of pixels it gets wrong.

    .venv/bin/python benchmarks/classmap_codec.py                 # 100 maps (10 s clip)
    .venv/bin/python benchmarks/classmap_codec.py --seconds 60    # 600 maps, the contest's clip length
"""

from __future__ import annotations

import argparse
import io
import lzma
import time
from fractions import Fraction

import brotli
import numpy as np

from tac_core.archive import decode_class_maps, encode_class_maps, simplify_class_maps
from tac_core.scenes import default_clip, ground_truth_path, iter_class_maps

CLASSES = 5
LUMA_STEP = 50


def clip_maps(seconds: float, height: int, width: int) -> np.ndarray:
    """(pairs, height, width) uint8: the default clip's class maps of frames 1, 3, 5, ... resized."""
    maps = []
    for i, m in enumerate(iter_class_maps(ground_truth_path(default_clip(seconds=seconds)))):
        if i % 2 == 1:
            rows = ((np.arange(height) + 0.5) * m.shape[0] / height).astype(int)
            cols = ((np.arange(width) + 0.5) * m.shape[1] / width).astype(int)
            maps.append(m[np.ix_(rows, cols)])
    return np.stack(maps)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def av1(maps: np.ndarray, crf: int | None) -> tuple[int, float, float, float]:
    """Bytes, encode and decode seconds, and the fraction of wrong pixels of SVT-AV1 (``crf`` None: lossless)."""
    import av

    n, h, w = maps.shape
    params = "lossless=1" if crf is None else "tune=0"
    buf = io.BytesIO()
    start = time.perf_counter()
    with av.open(buf, mode="w", format="ivf") as out:
        stream = out.add_stream("libsvtav1", rate=Fraction(20))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "8", "svtav1-params": params, **({} if crf is None else {"crf": str(crf)})}
        chroma = np.full((h // 2, w), 128, np.uint8)
        for i, m in enumerate(maps):
            frame = av.VideoFrame.from_ndarray(np.concatenate([(16 + LUMA_STEP * m).astype(np.uint8), chroma]),
                                               format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    enc = time.perf_counter() - start
    data = buf.getvalue()
    start = time.perf_counter()
    back = []
    with av.open(io.BytesIO(data), format="ivf") as inp:
        for frame in inp.decode(video=0):
            luma = frame.to_ndarray(format="yuv420p")[:h].astype(np.int32)
            back.append(np.clip(np.rint((luma - 16) / LUMA_STEP), 0, CLASSES - 1).astype(np.uint8))
    dec = time.perf_counter() - start
    wrong = float((np.stack(back) != maps).mean()) if len(back) == n else 1.0
    return len(data), enc, dec, wrong


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length (maps = seconds * 20 / 2)")
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--crfs", type=int, nargs="*", default=[1, 20, 35, 50])
    ap.add_argument("--flips", type=float, default=0.002, help="near-lossless: most pixels changed per map")
    args = ap.parse_args(argv)

    maps = clip_maps(args.seconds, args.height, args.width)
    raw = maps.tobytes()
    print(f"{maps.shape[0]} class maps of {args.height}x{args.width} ({len(raw)} raw bytes, {CLASSES} classes)")
    rows = []
    for version, name in ((2, "classmap2"), (1, "classmap")):
        coded, enc = _timed(encode_class_maps, maps, CLASSES, version)
        back, dec = _timed(lambda: decode_class_maps(coded, *maps.shape, CLASSES, version=version))
        assert np.array_equal(back, maps), f"{name} round trip failed"
        rows.append((f"{name} lossless", len(coded), enc, dec, 0.0))
    simple, simplify_s = _timed(simplify_class_maps, maps, None, args.flips)
    coded_s, enc_s = _timed(encode_class_maps, simple, CLASSES)
    _, dec_s = _timed(decode_class_maps, coded_s, *maps.shape, CLASSES)
    rows.append((f"classmap2 near-lossless ({args.flips:g})", len(coded_s), simplify_s + enc_s, dec_s,
                 float((simple != maps).mean())))
    b, enc_b = _timed(brotli.compress, raw, 0, 11, 24)
    _, dec_b = _timed(brotli.decompress, b)
    rows.append(("brotli q11", len(b), enc_b, dec_b, 0.0))
    x, enc_x = _timed(lzma.compress, raw, lzma.FORMAT_XZ, -1, 9 | lzma.PRESET_EXTREME)
    _, dec_x = _timed(lzma.decompress, x)
    rows.append(("lzma 9e", len(x), enc_x, dec_x, 0.0))
    for crf in [None, *args.crfs]:
        try:
            size, e, d, wrong = av1(maps, crf)
        except Exception as exc:  # an SVT-AV1 build without lossless mode, for instance
            print(f"AV1 {'lossless' if crf is None else f'crf {crf}'}: not available ({exc})")
            continue
        rows.append((f"AV1 {'lossless' if crf is None else f'crf {crf}'} (SVT-AV1 preset 8)", size, e, d, wrong))

    base = rows[0][1]
    print("\n| codec | bytes | x classmap2 | encode s | decode s | wrong pixels |\n|---|---:|---:|---:|---:|---:|")
    for name, size, e, d, wrong in rows:
        print(f"| {name} | {size} | {size / base:.2f} | {e:.2f} | {d:.2f} | {wrong:.5f} |")


if __name__ == "__main__":
    main()
