"""Inflate an ``hnerv_pair`` member (``X.tac``): decoder + latents -> uint8 camera frames.

    member bytes --tac_torch.archive_io.read_model--> decoder, latents (P, d), frame count N,
        the sidecars' codes (output bias (P, 2, 3), pose field (P, 3, 3, 4)) or none
      --tac_torch.renderers.render_uint8 (RENDER_BATCH pairs at a time; bicubic to 874x1164,
        clamp, round)--> (b,2,874,1164,3) u8
      --RawWriter, the first N frames--> X.raw

The renderer and the upsampling are the training chain's own code, vendored into the
submission (``tac_torch/renderers.py``, ``tac_torch/frames.py``); on the same device the
frames are bit for bit those training scored and ``HnervPairRenderer.render`` returns. An odd N
renders P = (N + 1) / 2 pairs and drops the second frame of the last one. CUDA is used when present; CPU otherwise.
"""

from __future__ import annotations

from pathlib import Path

from tac_core import contract

from .rawout import RawWriter

SUFFIX = ".tac"


def configure_torch() -> None:
    """CPU inference settings: no autograd bookkeeping; every available core."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))


def render_frames(model, latents, frames: int, device: str = "cpu", output_bias=None, pose_field=None):
    """Yield uint8 numpy batches ``(n, 874, 1164, 3)`` whose total is ``frames`` frames."""
    from tac_torch.renderers import render_uint8

    left = frames
    for pairs in render_uint8(model, latents, device, output_bias=output_bias, pose_field=pose_field):
        batch = pairs.reshape(-1, *pairs.shape[2:])[:left].cpu().numpy()
        left -= len(batch)
        yield batch


def inflate_member(member: Path, out: Path, device: str = "cpu") -> int:
    """Write ``out`` (.raw) from one ``hnerv_pair`` member; returns the frame count."""
    from tac_torch.archive_io import read_model

    configure_torch()
    decoded = read_model(Path(member).read_bytes())
    with RawWriter(out, contract.CAMERA_HW) as writer:
        for batch in render_frames(decoded.model, decoded.latents, decoded.frames, device, decoded.output_bias,
                                   decoded.pose_field):
            writer.write(batch)
    return writer.frames
