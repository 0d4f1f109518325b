"""An ``hnerv_pair`` archive member back into a decoder, its latents and the frame count.

    member bytes --read_archive--> architecture id 1, params = spec + {"frames": N}
        tensors (dequantised exactly as docs/archive-format.md section 4 defines)
      --> HnervPair(spec) holding the decoder tensors, latents (P, latent_dim) float32, N,
          the sidecars' int8 codes when the member has them: output bias (P, 2, 3), pose field (P, 3, 3, 4)

N is the video's frame count; P = ceil(N / 2) pairs. An odd N renders its last
pair and keeps only the first frame of it. This module needs torch, the archive
reader and ``tac_torch.renderers`` only: the export vendors it into every
submission, where the inflate runtime imports it (``tac_torch.export`` writes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from tac_core.architectures import output_bias, pose_field
from tac_core.architectures.layout import FRAMES_PARAM, pairs_for
from tac_core.archive import Archive, read_archive
from tac_core.errors import ArchiveError, InputError, WeightsError
from tac_torch import renderers

class HnervArchive(NamedTuple):
    """What an ``hnerv_pair`` member holds."""

    model: renderers.HnervPair          # eval mode, CPU
    latents: torch.Tensor               # (P, latent_dim) float32
    frames: int                         # the video's frame count N
    output_bias: torch.Tensor | None    # (P, 2, 3) int8 codes of the output-bias sidecar, or None
    pose_field: torch.Tensor | None = None   # (P, 3, 3, 4) int8 codes of the pose-field sidecar, or None


def read_model(data: bytes) -> HnervArchive:
    """The decoder, latents, frame count and output-bias sidecar held by an ``hnerv_pair``
    archive; ``ArchiveError`` when the bytes are not one."""
    archive: Archive = read_archive(data)
    if archive.architecture.id != renderers.SPEC_ID:
        raise ArchiveError(f"archive holds architecture {archive.architecture.name}, "
                           f"not {renderers.NAME} (id {renderers.SPEC_ID})")
    params = dict(archive.architecture.params)
    frames = params.pop(FRAMES_PARAM, None)
    try:
        spec = renderers.validate_spec(params)
        tensors = dict(archive.tensors)
        latents = tensors.pop(renderers.LATENTS, None)
        bias, field = tensors.pop(output_bias.NAME, None), tensors.pop(pose_field.NAME, None)
        if latents is None or latents.ndim != 2 or latents.shape[1] != spec["latent_dim"]:
            raise ArchiveError(f"archive has no {renderers.LATENTS!r} table of shape (P, {spec['latent_dim']})")
        model = renderers.HnervPair.from_arrays(spec, tensors).eval()
    except (InputError, WeightsError) as exc:
        raise ArchiveError(f"archive does not describe an {renderers.NAME} decoder: {exc}") from None
    return HnervArchive(model, torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)),
                        checked_frames(frames, len(latents), "latents"), sidecar_codes(output_bias, bias, len(latents)),
                        sidecar_codes(pose_field, field, len(latents)))


def checked_frames(frames: int | None, pairs: int, what: str) -> int:
    """An archive's declared frame count (absent: two per pair), checked against its ``pairs`` codes."""
    frames = 2 * pairs if frames is None else frames
    if frames < 1 or pairs_for(frames) != pairs:
        raise ArchiveError(f"archive declares {frames} frames but holds {pairs} {what} "
                           f"(needs {pairs_for(max(frames, 1))})")
    return int(frames)


def sidecar_codes(sidecar, codes, pairs: int) -> torch.Tensor | None:
    """An archive's codes of ``sidecar`` (the module ``output_bias`` or ``pose_field``) as an int8
    tensor, checked; None when absent."""
    if codes is None:
        return None
    try:
        return torch.from_numpy(sidecar.check_codes(codes, pairs))
    except InputError as exc:
        raise ArchiveError(f"archive's {sidecar.NAME} sidecar does not fit: {exc}") from None
