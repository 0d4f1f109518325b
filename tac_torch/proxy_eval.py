"""Held-out checks of the proxy scorers: accuracy against the scenes' truth, and codec response.

    held-out seed --write_clip (x265 CRF 18, like every synthetic clip)--> clip.mkv + clip.npz
      clean pairs --scorers.outputs--> reference   (accuracy: seg vs exact class maps, pose vs truth)
      --codec (encode_member, decode, bicubic up)--> candidate pairs --outputs--> distortion
         seg = argmax disagreement, pose = MSE of the first 6 outputs (``TorchScorers.distortion``)

Held-out seeds (0..99) never appear in training (seeds from 100 on).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from tac_core import video
from tac_core.classical import AV1, X265_BASELINE
from tac_core.scenes import CLASS_NAMES, SceneConfig, iter_class_maps, read_ground_truth, write_clip
from tac_torch import proxy
from tac_torch.proxy_train import class_map_resize, degraded

BATCH_PAIRS = 4
POSE_NAMES = ("t_x", "t_y", "t_z", "r_x", "r_y", "r_z")


def codec_ladder() -> dict[str, object]:
    """The settings the check reports: baseline_fast, x265 at CRF 20/40 (0.45x), AV1 CRF 40."""
    ladder = {"x265 crf20 0.45x": X265_BASELINE.with_settings(crf=20),
              "baseline_fast (x265 crf30 0.45x)": X265_BASELINE,
              "x265 crf40 0.45x": X265_BASELINE.with_settings(crf=40),
              "av1 crf40 0.45x": AV1}
    return ladder


def _outputs(scorers, frames: np.ndarray) -> dict[str, np.ndarray]:
    return scorers.outputs_batched(frames.reshape(-1, 2, *frames.shape[1:]), BATCH_PAIRS)


def _accuracy(seg: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Overall pixel accuracy and per-class recall of argmax maps against true class maps."""
    out = {"overall": float((seg == truth).mean())}
    for c, name in enumerate(CLASS_NAMES):
        mask = truth == c
        out[name] = float((seg[mask] == c).mean()) if mask.any() else float("nan")
    return out


def heldout(scorer_sets: dict[str, object], seeds: Iterable[int] = range(10), seconds: float = 2.0,
            ladder: dict[str, object] | None = None, log: Callable[[str], None] = print) -> dict:
    """Accuracy (proxy only) and per-setting mean distortions of each scorer set on held-out clips.

    ``scorer_sets`` maps a label to a ``TorchScorers``; all of them see the same pairs.
    """
    ladder = codec_ladder() if ladder is None else ladder
    sums = {label: {name: [0.0, 0.0] for name in ladder} for label in scorer_sets}
    seg_hits, seg_true, pose_err, pose_true, n_pairs = [], [], [], [], 0
    started = time.perf_counter()
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="tac-proxy-eval-") as tmp:
            clip = Path(tmp) / f"heldout-{seed}.mkv"
            write_clip(clip, SceneConfig(seed=seed, seconds=seconds), workers=0)
            truth = read_ground_truth(clip.with_suffix(".npz"))
            maps = np.stack(list(iter_class_maps(clip.with_suffix(".npz"))))[1::2]
            clean = np.stack(list(video.decode_frames(clip)))
            refs = {label: _outputs(s, clean) for label, s in scorer_sets.items()}
            for label, s in scorer_sets.items():
                if s.kind == "proxy":
                    seg_hits.append(refs[label]["seg"])
                    seg_true.append(class_map_resize(maps))
                    metric = s.posenet.metric_pose(torch.from_numpy(refs[label]["pose"])).numpy()
                    pose_err.append(metric - truth.poses)
                    pose_true.append(truth.poses)
            for name, codec in ladder.items():
                frames = degraded(codec, clip, Path(tmp))
                for label, s in scorer_sets.items():
                    pose, seg = s.distortion(refs[label], _outputs(s, frames))
                    sums[label][name][0] += float(pose.sum())
                    sums[label][name][1] += float(seg.sum())
            n_pairs += len(clean) // 2
        log(f"  held-out seed {seed}: {n_pairs} pairs ({time.perf_counter() - started:.0f} s)")
    result = {"seeds": list(seeds), "seconds_per_clip": seconds, "pairs": n_pairs,
              "distortion": {label: {name: {"pose": v[0] / n_pairs, "seg": v[1] / n_pairs}
                                     for name, v in per.items()} for label, per in sums.items()},
              "wall_s": round(time.perf_counter() - started, 1)}
    if seg_hits:
        err, true = np.concatenate(pose_err), np.concatenate(pose_true)
        std = np.maximum(true.std(0), 1e-12)
        result["pixel_accuracy"] = _accuracy(np.concatenate(seg_hits), np.concatenate(seg_true))
        result["pose_rmse"] = dict(zip(POSE_NAMES, np.sqrt((err ** 2).mean(0)).tolist()))
        result["pose_true_std"] = dict(zip(POSE_NAMES, std.tolist()))
        result["pose_r2"] = dict(zip(POSE_NAMES, (1 - (err ** 2).mean(0) / std ** 2).tolist()))
    return result


def noise_flips(scorers, frame: np.ndarray, sigma: float = 2.0, seed: int = 0) -> float:
    """Fraction of SegNet pixels whose argmax changes when Gaussian noise of ``sigma`` is added."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(frame.astype(np.float32) + rng.normal(0, sigma, frame.shape), 0, 255)
    noisy = np.round(noisy).astype(np.uint8)
    a = scorers.outputs(np.stack([frame, frame])[None])
    b = scorers.outputs(np.stack([frame, noisy])[None])
    return float(scorers.distortion(a, b)[1][0])


def parameter_summary() -> dict[str, int]:
    """Parameter counts of the two proxy architectures."""
    return {"segnet": proxy.parameter_count(proxy.ProxySegNet()),
            "posenet": proxy.parameter_count(proxy.ProxyPoseNet())}
