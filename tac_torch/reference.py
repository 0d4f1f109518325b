"""A plain sequential evaluator written straight from the contract, for cross-checks.

It decodes with torch (not tac_core.video), preprocesses with its own tensor code,
scores each batch as it is decoded, keeps nothing between runs, and runs on one
thread of control: the way the official harness works. ``tac_torch.evaluate``
must agree with it; ``benchmarks/evaluate_speed.py`` times both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from tac_core import contract


def _rgb_from_frame(frame) -> torch.Tensor:
    h, w = frame.height, frame.width
    planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:ph, :pw].copy()
              for p, (ph, pw) in zip(frame.planes, ((h, w), (h // 2, w // 2), (h // 2, w // 2)))]
    y = torch.from_numpy(planes[0]).float()
    u, v = (F.interpolate(torch.from_numpy(p).float()[None, None], size=(h, w), mode="bilinear",
                          align_corners=False)[0, 0] for p in planes[1:])
    yf, uf, vf = (y - 16.0) * (255.0 / 219.0), (u - 128.0) * (255.0 / 224.0), (v - 128.0) * (255.0 / 224.0)
    rgb = [(yf + 1.402 * vf), (yf - 0.344136 * uf - 0.714136 * vf), (yf + 1.772 * uf)]
    return torch.stack([c.clamp(0, 255) for c in rgb], dim=-1).round().to(torch.uint8)


def _decoded_batches(path: Path, batch_size: int) -> Iterator[torch.Tensor]:
    import av

    with av.open(str(path)) as container:
        frames, batch = [], []
        for frame in container.decode(container.streams.video[0]):
            frames.append(_rgb_from_frame(frame))
            if len(frames) == contract.SEQ_LEN:
                batch.append(torch.stack(frames))
                frames = []
                if len(batch) == batch_size:
                    yield torch.stack(batch)
                    batch = []
        if batch:
            yield torch.stack(batch)


def _raw_batches(path: Path, batch_size: int) -> Iterator[torch.Tensor]:
    h, w = contract.CAMERA_HW
    data = np.fromfile(path, dtype=np.uint8).reshape(-1, h, w, 3)
    usable = data.shape[0] // contract.SEQ_LEN * contract.SEQ_LEN
    pairs = torch.from_numpy(data[:usable]).reshape(-1, contract.SEQ_LEN, h, w, 3)
    yield from pairs.split(batch_size)


def _yuv6(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    y = (r * 0.299 + g * 0.587 + b * 0.114).clamp(0, 255)
    u = ((b - y) / 1.772 + 128.0).clamp(0, 255)
    v = ((r - y) / 1.402 + 128.0).clamp(0, 255)
    sub = [(p[..., 0::2, 0::2] + p[..., 1::2, 0::2] + p[..., 0::2, 1::2] + p[..., 1::2, 1::2]) * 0.25 for p in (u, v)]
    return torch.stack([y[..., 0::2, 0::2], y[..., 1::2, 0::2], y[..., 0::2, 1::2], y[..., 1::2, 1::2], *sub], dim=-3)


def _forward(scorers, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b = pairs.shape[0]
    x = pairs.to(scorers.device).permute(0, 1, 4, 2, 3).float()          # (B,2,3,H,W), channels-last memory
    both = F.interpolate(x.flatten(0, 1), size=contract.MODEL_INPUT_HW, mode="bilinear")
    planes = _yuv6(both)                                                   # (2B,6,192,256)
    pose = scorers.posenet(planes.reshape(b, 2 * planes.shape[1], *planes.shape[2:]))["pose"]
    seg = scorers.segnet(F.interpolate(x[:, -1], size=contract.MODEL_INPUT_HW, mode="bilinear"))
    return pose, seg


@torch.inference_mode()
def evaluate_plain(video: Path, raw: Path, scorers, batch_size: int = contract.BATCH_SIZE) -> tuple[float, float, int]:
    """(pose, seg, samples) of ``raw`` against ``video``, computed the plain way."""
    dev = torch.device(scorers.device)
    pose_sum, seg_sum, count = torch.zeros([], device=dev), torch.zeros([], device=dev), torch.zeros([], device=dev)
    for ref, cand in zip(_decoded_batches(video, batch_size), _raw_batches(raw, batch_size)):
        if ref.shape != cand.shape:
            raise ValueError(f"batch shapes differ: {tuple(ref.shape)} vs {tuple(cand.shape)}")
        (pose_a, seg_a), (pose_b, seg_b) = _forward(scorers, ref), _forward(scorers, cand)
        pose_sum += (pose_a[..., :contract.POSE_SCORED] - pose_b[..., :contract.POSE_SCORED]).pow(2).mean(dim=1).sum()
        seg_sum += (seg_a.argmax(dim=1) != seg_b.argmax(dim=1)).float().mean(dim=(1, 2)).sum()
        count += ref.shape[0]
    return (pose_sum / count).item(), (seg_sum / count).item(), int(count.item())
