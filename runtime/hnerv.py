"""Inflate an ``hnerv_pair`` member (``X.tac``): decoder + latents -> uint8 camera frames.

    member bytes --tac_torch.archive_io.read_model--> decoder, latents (P, d), frame count N
      --decoder, BATCH_PAIRS pairs at a time--> (b,2,3,h,w) float
      --tac_torch.frames.camera_pairs_uint8 (bicubic to 874x1164, clamp, round)--> (b,2,874,1164,3) u8
      --RawWriter, the first N frames--> X.raw

The renderer and the upsampling are the training chain's own code, vendored into the
submission (``tac_torch/renderers.py``, ``tac_torch/frames.py``). Convolutions and matrix
products round differently for different batch sizes, so the frames are defined as rendered
BATCH_PAIRS pairs at a time from pair 0, as ``HnervPairRenderer.render`` does: on the same
device they are bit for bit that renderer's frames. An odd N renders P = (N + 1) / 2 pairs
and drops the second frame of the last one. CUDA is used when present; CPU otherwise.
"""

from __future__ import annotations

from pathlib import Path

from tac_core import contract

from .rawout import RawWriter

BATCH_PAIRS = 8                 # HnervPairRenderer's batch: the same batches give the same bytes
SUFFIX = ".tac"


def configure_torch() -> None:
    """CPU inference settings: no autograd bookkeeping; every available core."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))


def render_frames(model, latents, frames: int, device: str = "cpu"):
    """Yield uint8 numpy batches ``(n, 874, 1164, 3)`` whose total is ``frames`` frames."""
    import torch

    from tac_torch.frames import camera_pairs_uint8

    model = model.to(device).eval()
    left = frames
    with torch.inference_mode():
        for i in range(0, len(latents), BATCH_PAIRS):
            pairs = camera_pairs_uint8(model(latents[i:i + BATCH_PAIRS].to(device)))
            batch = pairs.reshape(-1, *pairs.shape[2:])[:left].cpu().numpy()
            left -= len(batch)
            yield batch


def inflate_member(member: Path, out: Path, device: str = "cpu") -> int:
    """Write ``out`` (.raw) from one ``hnerv_pair`` member; returns the frame count."""
    from tac_torch.archive_io import read_model

    configure_torch()
    model, latents, frames = read_model(Path(member).read_bytes())
    with RawWriter(out, contract.CAMERA_HW) as writer:
        for batch in render_frames(model, latents, frames, device):
            writer.write(batch)
    return writer.frames
