"""What every renderer's archive layout shares: the ``frames`` parameter and the tensor order.

    architecture params = spec + {"frames": N}  -->  P = ceil(N / 2) pairs
    layout: the network's tensors of rank >= 2 (module order), then those of rank < 2
            (module order), then the per-pair tensors, the optional sidecars last

Weights of one quantizer sit next to each other in that order, so a section
names them with one run of schema positions (docs/archive-format.md section 4).
"""

from __future__ import annotations

from typing import Mapping

from tac_core.architectures import output_bias, pose_field
from tac_core.errors import InputError

FRAMES_PARAM = "frames"         # architecture parameter beside the spec: the video's frame count


def pairs_for(frames: int) -> int:
    """Pairs rendered for a video of ``frames`` frames (a last unpaired frame gets a pair)."""
    return -(-int(frames) // 2)


def with_frames(spec: Mapping[str, int], frames: int) -> dict[str, int]:
    """What an archive header's architecture carries: a (validated) spec and the frame count."""
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise InputError(f"a video's frame count must be a positive integer, got {frames!r}")
    return {**spec, FRAMES_PARAM: frames}


def split_params(params: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """``(spec, frames)`` of an archive's architecture parameters; ``ValueError`` without a
    positive frame count."""
    spec = dict(params)
    frames = spec.pop(FRAMES_PARAM, None)
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"the {FRAMES_PARAM!r} parameter must be a positive frame count, got {frames!r}")
    return spec, frames


def network_first(shapes: Mapping[str, tuple[int, ...]]) -> list[tuple[str, tuple[int, ...]]]:
    """The network's tensors, those of rank >= 2 first, each group in module order."""
    items = list(shapes.items())
    return [kv for kv in items if len(kv[1]) >= 2] + [kv for kv in items if len(kv[1]) < 2]


def sidecar_tensors(pairs: int, bias=None, field=None) -> dict:
    """The archive tensors of the sidecars given as int codes (numpy arrays, or None): each
    checked and stored raw as int8, and left out when all zero (absent means zero)."""
    from tac_core.archive import QuantSpec
    from tac_core.archive.quantizers import quantize

    out = {}
    for sidecar, codes in ((output_bias, bias), (pose_field, field)):
        codes = None if codes is None else sidecar.check_codes(codes, pairs)
        if codes is not None and codes.any():
            out[sidecar.NAME] = quantize(codes, QuantSpec("raw"))
    return out


def sidecar_entries(pairs: int) -> list[tuple[str, tuple[int, ...]]]:
    """The optional sidecars' schema entries, last in every renderer's layout: the output bias,
    then the pose field."""
    return [(output_bias.NAME, (pairs, output_bias.FRAMES, output_bias.CHANNELS)),
            (pose_field.NAME, pose_field.shape(pairs))]
