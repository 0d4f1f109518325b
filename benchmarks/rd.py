"""Rate-distortion of classical codecs and of tac's learned renderers on synthetic clips.

    seed --write_clip--> clip.mkv (the clip's "original", like the contest video)
      --each ladder setting: encode_member, decode, bicubic back up--> candidate frames
      --scorers (proxy by default): distortion against the clip's own outputs-->  seg, pose
      rate = bytes / (37,545,489 x frames / 1200)   (the contest's bytes per frame)
      score = 100 seg + sqrt(10 pose) + 25 rate

    seed --each of --renderers: the step chain ``tac compress`` runs (tac_torch.compress_steps),
           --tac-preset, in a temporary run folder-->  the evaluate step's seg, pose, bytes
      hnerv_pair: targets -> train -> tto -> sidecar -> pose_field -> package -> evaluate
      mask_warp:  targets -> train -> lowbit -> maps -> tto -> finetune -> sidecar -> pose_field -> package
                  -> evaluate

The evaluate step inflates the packaged archive.zip through its own inflate.sh and scores it with
the same scorers and the same rate (basis "contest-per-frame"). Over several seeds, bytes and
frames are summed and seg and pose averaged per pair. Writes ``rd.md`` (a table) and ``rd.png``
(score, seg and pose against bytes) into --out. The last line states the ratio of tac's best
score to the best classical score.

    .venv/bin/python benchmarks/rd.py --quick
    .venv/bin/python benchmarks/rd.py --seeds 0 1 --seconds 10      # both renderers, the demo presets in full
    .venv/bin/python benchmarks/rd.py --seconds 30 --tac-preset '' --ladder av1:45@0.45 av1:50@0.45 av1:55@0.45

--quick is one 2 s clip, a 9-point ladder (AV1 bracketed around its best point) and mask_warp only,
trained for QUICK_TAC_STEPS (400) steps of the demo preset's 920 (one torch thread by default; the
preset's two starts scale to 130 steps each): 6.0 minutes on 2 cores (the ladder about 1.5 minutes).
Measured: mask_warp 0.591 (seg 0.00162, pose 0.00007, 20,077 bytes: class-map steering and the pose
field's two passes included; the starts kept seed 0, 0.00409 against 0.00983 after 130 steps)
against AV1 CRF 55 at 0.45x, 1.386, a ratio of 0.426 (proxy); 0.595 (20,295 bytes) with the
classmap stage instead of classmap2. An earlier preset measured 0.600
(seg 0.00172, pose 0.00006, 20,203 bytes; 0.616 with 3 steering rounds and the pose field's
first pass at Adam rate 2 and decay 0.999, 0.660 with one pose-field pass, 0.859 with the default
network spec and nearest rounding of the pose field, 1.021 before steering, 2.123 before the pose
field). On 20 pairs the int4 network's ~10 KB is about half of tac's bytes.
A full run adds hnerv_pair and each preset's full training; the presets' comments give their times.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tac_core import contract, video
from tac_core.classical import AV1, X265_BASELINE
from tac_core.scenes import SceneConfig, write_clip
from tac_torch.compress_steps import RENDERERS

QUICK = {"x265": [(24, 0.45), (30, 0.45), (36, 0.45), (42, 0.45)],
         "av1": [(35, 0.45), (45, 0.45), (55, 0.45), (63, 0.45), (55, 0.35)]}
FULL = {"x265": [(c, s) for s in (0.35, 0.45, 0.6) for c in (22, 26, 30, 34, 38, 42)],
        "av1": [(c, s) for s in (0.25, 0.35, 0.45, 0.6) for c in (30, 38, 46, 54, 62)]}
CODECS = {"x265": X265_BASELINE, "av1": AV1}      # the classical families a ladder may name
COLOURS = {"x265": (200, 60, 40), "av1": (40, 90, 200), "tac": (30, 150, 60)}
TAC = "tac"
QUICK_RENDERERS = ("mask_warp",)
QUICK_TAC_STEPS = 400           # --tac-steps under --quick, so that it fits 10 minutes (see above)


def scorers_for(args):
    from tac_torch.scorers import load_scorers

    if args.scorers == "proxy":
        return load_scorers("proxy")
    if args.scorers == "stand-in":
        return load_scorers("stand-in")
    return load_scorers("contest", Path(args.scorers))


def outputs(scorers, frames: np.ndarray, batch: int = 4) -> dict[str, np.ndarray]:
    return scorers.outputs_batched(frames.reshape(-1, 2, *frames.shape[1:]), batch)


def parse_ladder(points: list[str]) -> dict[str, list[tuple[int, float]]]:
    """``["av1:50@0.45", ...]`` -> ``{"av1": [(50, 0.45)], ...}``; ``ValueError`` naming a malformed point."""
    ladder: dict[str, list[tuple[int, float]]] = {}
    for point in points:
        family, _, rest = point.partition(":")
        crf, _, scale = rest.partition("@")
        try:
            setting = (int(crf), float(scale))
        except ValueError:
            setting = None
        if family not in CODECS or setting is None or not 0 < setting[1] <= 1:
            raise ValueError(f"ladder point {point!r} is not FAMILY:CRF@SCALE (x265 or av1, 0 < scale <= 1)")
        ladder.setdefault(family, []).append(setting)
    return ladder


def run_ladder(args, scorers) -> list[dict]:
    from tac_torch.proxy_train import degraded

    ladder = args.ladder or (QUICK if args.quick else FULL)
    rows = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="tac-rd-") as tmp:
            clip = Path(tmp) / f"seed{seed}.mkv"
            write_clip(clip, SceneConfig(seed=seed, seconds=args.seconds), workers=0)
            clean = np.stack(list(video.decode_frames(clip)))
            ref = outputs(scorers, clean)
            for renderer in args.renderers if args.tac_preset else ():
                label, evaluated = run_tac(args, scorers, clip, Path(tmp), renderer)
                _add(rows, (TAC, label, "-"), evaluated["bytes"], len(clean), evaluated["seg"],
                     evaluated["pose"], seed)
            for family, settings in ladder.items():
                for crf, scale in settings:
                    codec = CODECS[family].with_settings(crf=crf, scale=scale)
                    member = Path(tmp) / "member.mkv"
                    codec.encode_member(clip, member)
                    size = member.stat().st_size
                    member.unlink()
                    pose, seg = scorers.distortion(ref, outputs(scorers, degraded(codec, clip, Path(tmp))))
                    _add(rows, (family, crf, scale), size, len(clean), float(seg.mean()), float(pose.mean()),
                         seed)
    out = []
    for row in rows.values():
        pairs = row["frames"] // 2
        row["pose"] /= pairs
        row["seg"] /= pairs
        row["rate"] = row["bytes"] / contract.contest_equivalent_original_bytes(row["frames"])
        row["score"] = contract.score(row["seg"], row["pose"], row["rate"])
        out.append(row)
    return sorted(out, key=lambda r: (r["family"], r["bytes"]))


def _add(rows: dict, key: tuple, size: int, frames: int, seg: float, pose: float, seed: int) -> None:
    """Add one clip's bytes, frames and per-pair mean seg and pose to the row ``key``."""
    family, crf, scale = key
    row = rows.setdefault(key, {"family": family, "crf": crf, "scale": scale,
                                "bytes": 0, "frames": 0, "pose": 0.0, "seg": 0.0})
    row["bytes"] += size
    row["frames"] += frames
    row["pose"] += pose * (frames // 2)
    row["seg"] += seg * (frames // 2)
    print(f"  seed {seed} {family} {crf} scale {scale}: {size:,} bytes, seg {seg:.5f}, pose {pose:.5f}", flush=True)


def tac_steps(job, renderer: str, preset: str, steps: int | None) -> tuple[list, str]:
    """``tac compress``'s steps for ``renderer`` with ``preset`` (scaled to ``steps``), and the row's label."""
    from tac_torch.compress_steps import renderer_steps

    chain, name = renderer_steps(job, renderer, preset, steps)
    return chain, name + ("" if steps is None else f", {steps} steps")


def run_tac(args, scorers, clip: Path, tmp: Path, renderer: str) -> tuple[str, dict]:
    """Run ``renderer``'s ``tac compress`` chain on ``clip`` in ``tmp``: (label, the evaluate step's summary)."""
    from tac_core.pipeline import run_pipeline
    from tac_core.pipeline.runs import INDEX_ENV
    from tac_torch.compress_steps import Job

    os.environ[INDEX_ENV] = str(tmp / "runs.jsonl")        # keep these runs out of the user's runs index
    job = Job(clip, scorers, str(scorers.device), "contest-per-frame", "benchmarks/rd.py")
    steps, label = tac_steps(job, renderer, args.tac_preset, args.tac_steps)
    run = run_pipeline(tmp / renderer, steps, meta={"renderer": renderer, "method": f"rd.py {label}"})
    times = ", ".join(f"{s.name} {s.seconds:.0f} s" for s in run.steps)
    print(f"  {label} on {clip.name}: {sum(s.seconds for s in run.steps):.0f} s ({times})", flush=True)
    return label, run["evaluate"].summary


def table(rows: list[dict], args) -> str:
    lines = [f"# R-D on synthetic clips (seeds {' '.join(map(str, args.seeds))}, {args.seconds:g} s each, "
             f"scorers: {args.scorers}, axis {'proxy' if args.scorers == 'proxy' else args.scorers})", "",
             "rate = bytes / (37,545,489 x frames / 1200), the contest's bytes per frame.", "",
             "| method | CRF / recipe | scale | bytes | rate | seg | pose | score |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['crf']} | {r['scale']} | {r['bytes']:,} | {r['rate']:.5f} | "
                     f"{r['seg']:.3e} | {r['pose']:.3e} | {r['score']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Three panels (score, seg, pose against bytes, log x) drawn with Pillow."""
    from PIL import Image, ImageDraw

    panels = [("score", "score"), ("seg", "seg disagreement"), ("pose", "pose MSE")]
    w, h, pad = 420, 320, 50
    img = Image.new("RGB", (w * len(panels), h), "white")
    draw = ImageDraw.Draw(img)
    xs = [math.log10(r["bytes"]) for r in rows]
    x0, x1 = min(xs) - 0.05, max(xs) + 0.05
    for p, (key, title) in enumerate(panels):
        ox = p * w
        ys = [r[key] for r in rows]
        y0, y1 = 0.0, max(ys) * 1.1 or 1.0

        def at(x, y, ox=ox, y0=y0, y1=y1):
            return (ox + pad + (x - x0) / (x1 - x0) * (w - 1.5 * pad), h - pad - (y - y0) / (y1 - y0) * (h - 1.6 * pad))
        draw.rectangle([ox + pad, 0.6 * pad, ox + w - 0.5 * pad, h - pad], outline="black")
        draw.text((ox + pad, 10), f"{title} vs bytes (log)", fill="black")
        for t in np.linspace(y0, y1, 5):
            _, yy = at(x0, t)
            draw.text((ox + 4, yy - 6), f"{t:.3g}", fill="black")
        for t in range(math.ceil(x0 * 4), math.floor(x1 * 4) + 1):
            xx, _ = at(t / 4, y0)
            draw.text((xx - 14, h - pad + 6), f"{10 ** (t / 4) / 1e3:.0f}k", fill="black")
        for family in sorted({r["family"] for r in rows}):
            for scale in sorted({r["scale"] for r in rows if r["family"] == family}):
                pts = [at(math.log10(r["bytes"]), r[key]) for r in rows
                       if r["family"] == family and r["scale"] == scale]
                if len(pts) > 1 and family != TAC:         # tac rows are separate renderers, not a curve
                    draw.line(pts, fill=COLOURS[family], width=2)
                for x, y in pts:
                    draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=COLOURS[family])
        for i, family in enumerate(sorted({r["family"] for r in rows})):
            draw.text((ox + w - 1.5 * pad, 0.7 * pad + 12 * i), family, fill=COLOURS[family])
    img.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="synthetic clip seeds (default 0)")
    parser.add_argument("--seconds", type=float, help="clip length (default 10; 2 with --quick)")
    parser.add_argument("--scorers", default="proxy", help="proxy (default), stand-in, or a folder of contest weights")
    parser.add_argument("--quick", action="store_true", help="one 2 s clip, a 9-point ladder, mask_warp at "
                        f"{QUICK_TAC_STEPS} steps (about 6 minutes on 2 cores)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--renderers", nargs="+", choices=RENDERERS,
                        help=f"tac's rows (default: both; {' '.join(QUICK_RENDERERS)} with --quick)")
    parser.add_argument("--tac-preset", default="demo", help="training preset of each renderer (default demo; "
                        "'' leaves tac out)")
    parser.add_argument("--tac-steps", type=int, help="scale each renderer's training to this many steps "
                        f"(default: the preset's; {QUICK_TAC_STEPS} with --quick)")
    parser.add_argument("--ladder", nargs="+", metavar="FAMILY:CRF@SCALE",
                        help="the classical points to run instead of the built-in ladder, e.g. av1:50@0.45")
    parser.add_argument("-o", "--out", type=Path, default=Path("rd-out"), help="output folder (default rd-out)")
    args = parser.parse_args()
    try:
        args.ladder = parse_ladder(args.ladder) if args.ladder else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 10.0
    if args.renderers is None:
        args.renderers = QUICK_RENDERERS if args.quick else RENDERERS
    if args.tac_steps is None and args.quick:
        args.tac_steps = QUICK_TAC_STEPS
    if args.tac_steps is not None and args.tac_steps < 1:
        parser.error("--tac-steps must be at least 1")
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = run_ladder(args, scorers_for(args))
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(rows, args)
    (args.out / "rd.md").write_text(text)
    plot(rows, args.out / "rd.png")
    print(text)
    print(f"wrote {args.out / 'rd.md'} and {args.out / 'rd.png'} in {time.perf_counter() - started:.0f} s")
    classical = [r for r in rows if r["family"] != TAC]
    best = min(classical, key=lambda r: r["score"])
    line = f"best classical: {best['family']} CRF {best['crf']} scale {best['scale']} score {best['score']:.3f}"
    tac = [r for r in rows if r["family"] == TAC]
    if tac:
        mine = min(tac, key=lambda r: r["score"])
        print(f"{line}; tac best ({mine['crf']}) {mine['score']:.3f}; "
              f"tac best / classical best = {mine['score'] / best['score']:.3f}")
    else:
        print(f"{line}; tac best / classical best: not measured (--tac-preset '')")

if __name__ == "__main__":
    main()
