"""A ``mask_warp`` archive member back into its network, class maps, poses and frame count.

    member bytes --read_archive--> architecture id 2, params = spec + {"frames": N}
        tensors: the network's weights, poses (P, pose_dim), class_maps (P, out_h, out_w) uint8
      --> MaskWarp(spec) holding the weights, class maps (long), poses float32, N

P = ceil(N / 2); an odd N renders its last pair and keeps its first frame only. Needs
torch, the archive reader and ``tac_torch.mask_warp``: vendored into every submission.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from tac_core.architectures import output_bias, pose_field
from tac_core.archive import read_archive
from tac_core.errors import ArchiveError, InputError, WeightsError
from tac_torch import mask_warp
from tac_torch.archive_io import FRAMES_PARAM, checked_frames, sidecar_codes


class Decoded(NamedTuple):
    """What a ``mask_warp`` member holds."""

    model: mask_warp.MaskWarp
    class_maps: torch.Tensor      # (P, out_h, out_w) int64 class indices
    poses: torch.Tensor           # (P, pose_dim) float32, as dequantised
    frames: int
    output_bias: torch.Tensor | None = None   # (P, 2, 3) int8 codes of the output-bias sidecar
    pose_field: torch.Tensor | None = None    # (P, 3, 3, 4) int8 codes of the pose-field sidecar


def read_model(data: bytes) -> Decoded:
    """The network (eval mode, CPU), class maps, poses and frame count of a ``mask_warp``
    archive; ``ArchiveError`` when the bytes are not one."""
    archive = read_archive(data)
    if archive.architecture.id != mask_warp.SPEC_ID:
        raise ArchiveError(f"archive holds architecture {archive.architecture.name}, "
                           f"not {mask_warp.NAME} (id {mask_warp.SPEC_ID})")
    params = dict(archive.architecture.params)
    frames = params.pop(FRAMES_PARAM, None)
    try:
        spec = mask_warp.validate_spec(params)
        tensors = dict(archive.tensors)
        poses, maps = tensors.pop(mask_warp.POSES, None), tensors.pop(mask_warp.CLASS_MAPS, None)
        bias, field = tensors.pop(output_bias.NAME, None), tensors.pop(pose_field.NAME, None)
        if poses is None or poses.ndim != 2 or poses.shape[1] != spec["pose_dim"]:
            raise ArchiveError(f"archive has no {mask_warp.POSES!r} table of shape (P, {spec['pose_dim']})")
        if maps is None or maps.dtype != np.uint8 or maps.shape != (len(poses), spec["out_h"], spec["out_w"]):
            raise ArchiveError(f"archive has no uint8 {mask_warp.CLASS_MAPS!r} of shape "
                               f"({len(poses)}, {spec['out_h']}, {spec['out_w']})")
        if maps.size and int(maps.max()) >= spec["classes"]:
            raise ArchiveError(f"class maps hold class {int(maps.max())}; the spec has {spec['classes']} classes")
        model = mask_warp.MaskWarp.from_arrays(spec, tensors).eval()
    except (InputError, WeightsError) as exc:
        raise ArchiveError(f"archive does not describe a {mask_warp.NAME} renderer: {exc}") from None
    return Decoded(model, torch.from_numpy(maps.astype(np.int64)),
                   torch.from_numpy(np.ascontiguousarray(poses, dtype=np.float32)),
                   checked_frames(frames, len(poses), "poses"), sidecar_codes(output_bias, bias, len(poses)),
                   sidecar_codes(pose_field, field, len(poses)))
