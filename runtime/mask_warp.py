"""Inflate a ``mask_warp`` member (``X.tac``, architecture id 2): class maps + poses -> frames.

    member bytes --tac_torch.mask_warp_io.read_model--> network, class maps (P, h, w), poses (P, 6), N
      --tac_torch.mask_warp.render_uint8 (RENDER_BATCH pairs at a time; bicubic to 874x1164,
        clamp, round)--> (b,2,874,1164,3) u8
      --RawWriter, the first N frames--> X.raw

The renderer and the upsampling are the training chain's own code, vendored into the
submission. An odd N renders P = (N + 1) / 2 pairs and drops the second frame of the last.
"""

from __future__ import annotations

from pathlib import Path

from tac_core import contract

from .hnerv import configure_torch
from .rawout import RawWriter


def inflate_member(member: Path, out: Path, device: str = "cpu") -> int:
    """Write ``out`` (.raw) from one ``mask_warp`` member; returns the frame count."""
    from tac_torch.mask_warp import render_uint8
    from tac_torch.mask_warp_io import read_model

    configure_torch()
    decoded = read_model(Path(member).read_bytes())
    left = decoded.frames
    with RawWriter(out, contract.CAMERA_HW) as writer:
        for pairs in render_uint8(decoded.model, decoded.class_maps, decoded.poses, device,
                                  output_bias=decoded.output_bias, pose_field=decoded.pose_field):
            batch = pairs.reshape(-1, *pairs.shape[2:])[:left].cpu().numpy()
            left -= len(batch)
            writer.write(batch)
    return writer.frames
