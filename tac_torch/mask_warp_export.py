"""A trained ``mask_warp`` network with its codes -> a contest archive -> a submission folder.

    MaskWarp + poses (P, 6) + class maps (P, out_h, out_w) u1 + frame count N
      --archive_tensors: weights int4 (or int8) per output channel, vectors int8 per tensor,
                         poses int8 per pose dimension, class maps lossless (classmap2 stage)--> tensors
      --build_archive: contest-safe stages, architecture id 2 = spec + frame count--> bytes
      --export_submission: archive.zip (member "<stem>.tac") + inflate.sh + runtime--> folder

Read back by ``tac_torch.mask_warp_io.read_model``, which the submission carries.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tac_core.architectures.layout import sidecar_tensors
from tac_core.archive import (Chain, ChooserOptions, QuantSpec, Quantized, classmap_chain, quantize,
                              write_archive)
from tac_core.errors import InputError, WeightsError
from tac_torch import mask_warp
from tac_torch.archive_io import pairs_for
from tac_torch.export import LATENT_SPEC, member_name
from tac_torch.quant import weight_specs

WEIGHT_KINDS = ("int4_sym", "int8_sym")        # the quantizers training's fake quantisation supports
VECTOR_KIND = "int8_sym"                       # biases: per tensor, 4 bits would be too coarse
# Poses: int8 with one scale per pose dimension, like hnerv_pair's latents (the dimensions
# have different ranges). Training feeds the renderer these quantised poses.
POSE_SPEC = LATENT_SPEC
# Class maps are stored losslessly: what the renderer was trained on is what the archive holds.
CLASS_MAP_SPEC = QuantSpec("raw")
ARCHIVE_OPTIONS = ChooserOptions(contest_safe=True)


def archive_specs(model: torch.nn.Module, weights: str = "int4_sym") -> dict[str, QuantSpec]:
    """The quantizer of every quantised tensor the archive stores (training's QAT uses the
    network's): rank >= 2 weights ``weights`` per output channel, vectors int8, poses ``POSE_SPEC``."""
    if weights not in WEIGHT_KINDS:
        raise InputError(f"mask_warp weights are quantised as one of {', '.join(WEIGHT_KINDS)}, got {weights!r}")
    return {**weight_specs(model, weights, vector_kind=VECTOR_KIND), mask_warp.POSES: POSE_SPEC}


def class_map_tensor(class_maps: np.ndarray, classes: int) -> Quantized:
    """The class maps as the archive stores them: u1 codes, coded by ``class_map_chain``."""
    return quantize(np.ascontiguousarray(class_maps, dtype=np.uint8), CLASS_MAP_SPEC)


def class_map_chain(spec: dict[str, int]) -> Chain | None:
    """The chain of the class maps' section (the ``classmap2`` stage: lossless, context-modelled,
    docs/archive-format.md section 5), or None to let the chooser pick a general-purpose one."""
    return classmap_chain(spec["out_h"], spec["out_w"], spec["classes"])


def check_codes(model: mask_warp.MaskWarp, poses: torch.Tensor, class_maps: np.ndarray, frames: int) -> None:
    """``InputError`` unless there is one pose and one class map per pair of ``frames`` frames."""
    if not isinstance(model, mask_warp.MaskWarp):
        raise InputError(f"expected a MaskWarp network, got {type(model).__name__}")
    s = model.spec
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise InputError(f"the frame count must be a positive integer, got {frames!r}")
    p = pairs_for(frames)
    if not isinstance(poses, torch.Tensor) or tuple(poses.shape) != (p, s["pose_dim"]):
        shape = tuple(poses.shape) if isinstance(poses, torch.Tensor) else type(poses).__name__
        raise InputError(f"{frames} frames need poses of shape ({p}, {s['pose_dim']}), got {shape}")
    if not bool(torch.isfinite(poses).all()):
        raise InputError("poses hold NaN or infinite values")
    if not isinstance(class_maps, np.ndarray) or class_maps.dtype != np.uint8 \
            or class_maps.shape != (p, s["out_h"], s["out_w"]):
        shape = getattr(class_maps, "shape", type(class_maps).__name__)
        raise InputError(f"{frames} frames need uint8 class maps of shape ({p}, {s['out_h']}, {s['out_w']}), "
                         f"got {getattr(class_maps, 'dtype', '')} {shape}")
    if class_maps.size and int(class_maps.max()) >= s["classes"]:
        raise InputError(f"class maps hold class {int(class_maps.max())}; the spec has {s['classes']} classes")


def archive_tensors(model: mask_warp.MaskWarp, poses: torch.Tensor, class_maps: np.ndarray,
                    weights: str = "int4_sym", bias: torch.Tensor | None = None,
                    field: torch.Tensor | None = None) -> dict[str, Quantized]:
    """The archive's tensors: quantised by ``archive_specs``, class maps by ``class_map_tensor``, the
    sidecars' codes (output bias, pose field; each when given and not all zero) raw int8."""
    specs = archive_specs(model, weights)
    arrays = model.arrays()
    missing = sorted(set(arrays) - set(specs))
    if missing:
        raise WeightsError(f"network tensors without a quantizer: {', '.join(missing[:4])}")
    out = {name: quantize(arrays[name], specs[name]) for name in arrays}
    out[mask_warp.POSES] = quantize(poses.detach().cpu().float().numpy(), specs[mask_warp.POSES])
    out[mask_warp.CLASS_MAPS] = class_map_tensor(class_maps, model.spec["classes"])
    out.update(sidecar_tensors(len(poses), *(None if c is None else c.detach().cpu().numpy() for c in (bias, field))))
    return out


def build_archive(model: mask_warp.MaskWarp, poses: torch.Tensor, class_maps: np.ndarray, frames: int,
                  weights: str = "int4_sym", options: ChooserOptions | None = None,
                  output_bias: torch.Tensor | None = None, pose_field: torch.Tensor | None = None) -> bytes:
    """A contest-safe archive of the renderer and its codes for a video of ``frames`` frames
    (with each sidecar, ``output_bias`` and ``pose_field``, that has a non-zero code)."""
    check_codes(model, poses, class_maps, frames)
    tensors = archive_tensors(model, poses, class_maps, weights, output_bias, pose_field)
    architecture = mask_warp.architecture(model.spec, frames)
    options = options or ARCHIVE_OPTIONS
    chain = class_map_chain(model.spec)
    if chain is not None:
        options = replace(options, chains={**(options.chains or {}), mask_warp.CLASS_MAPS: chain})
    schema = mask_warp.archive_schema(model.spec)
    return write_archive(tensors, architecture=architecture, schema=schema, options=options)


def export_submission(out_dir: Path, model: mask_warp.MaskWarp, poses: torch.Tensor, class_maps: np.ndarray,
                      frames: int, video_name: str = "0.mkv", weights: str = "int4_sym",
                      output_bias: torch.Tensor | None = None, pose_field: torch.Tensor | None = None) -> Path:
    """Write a submission folder whose inflate writes ``<stem of video_name>.raw`` with ``frames`` frames."""
    from tac_core.export import write_submission

    member = member_name(video_name)                         # a bad name fails before any work
    data = build_archive(model, poses, class_maps, frames, weights, output_bias=output_bias, pose_field=pose_field)
    return write_submission(Path(out_dir), member, data)
