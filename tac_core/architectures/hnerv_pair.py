"""``hnerv_pair`` as data: its spec (names -> integers), parameter shapes and archive schema.

Backend-neutral (numpy only), so every backend builds the same network from an
archive, and ``tac archive inspect`` reads hnerv_pair archives without torch.

    latent (latent_dim) --stem--> (width_0, out_h / 2^stages, out_w / 2^stages)
        --stages x [conv 3x3 -> pixel shuffle x2 -> snake]--> (width_stages, out_h, out_w)
        --refine blocks--> --head conv--> (2 frames x 3, out_h, out_w)
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from tac_core.architectures.layout import (FRAMES_PARAM, network_first, pairs_for, sidecar_entries, split_params,
                                           with_frames)
from tac_core.archive import Architecture, TensorSchema, register_schema
from tac_core.archive.format import ARCH_HNERV_PAIR_V1
from tac_core.errors import InputError

NAME = "hnerv_pair"
SPEC_ID = ARCH_HNERV_PAIR_V1
MAX_STAGES = 8
FRAMES = 2                      # frames rendered per latent: the pair
# An archive's frames are defined as rendered RENDER_BATCH pairs at a time from pair 0:
# convolutions round differently for other batch sizes, so every renderer keeps this one.
RENDER_BATCH = 8

HNERV_PAIR_DEFAULT: dict[str, int] = {
    "latent_dim": 28, "out_h": 384, "out_w": 512, "stages": 6, "refine_blocks": 1,
    "width_0": 16, "width_1": 48, "width_2": 44, "width_3": 32, "width_4": 24, "width_5": 16, "width_6": 12,
}


def spec_id(spec: Mapping[str, int] | None = None) -> int:
    """The archive architecture id of ``hnerv_pair`` v1 (the same for every valid spec)."""
    if spec is not None:
        validate_spec(spec)
    return SPEC_ID


def make_spec(**overrides: int) -> dict[str, int]:
    """The default spec with ``overrides``; changing ``stages`` drops or adds ``width_k`` keys
    (new ones copy the last width), so ``make_spec(stages=3, out_h=48, out_w=64)`` is valid."""
    spec = dict(HNERV_PAIR_DEFAULT)
    stages = overrides.get("stages", spec["stages"])
    if isinstance(stages, int) and 0 < stages <= MAX_STAGES:
        last = spec[f"width_{min(stages, spec['stages'])}"]
        for k in range(MAX_STAGES + 1):
            spec.pop(f"width_{k}", None) if k > stages else spec.setdefault(f"width_{k}", last)
    spec.update(overrides)
    return validate_spec(spec)


def validate_spec(spec: Mapping[str, int]) -> dict[str, int]:
    """A checked copy of ``spec``; ``InputError`` naming the first problem."""
    if not isinstance(spec, Mapping):
        raise InputError(f"an hnerv_pair spec is a mapping of names to integers, got {type(spec).__name__}")
    spec = dict(spec)
    for k, v in spec.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InputError(f"hnerv_pair spec {k!r} must be a non-negative integer, got {v!r}")
    stages = spec.get("stages")
    if stages is None or not 1 <= stages <= MAX_STAGES:
        raise InputError(f"hnerv_pair spec needs 'stages' in 1..{MAX_STAGES}, got {stages!r}")
    expected = {"latent_dim", "out_h", "out_w", "stages", "refine_blocks"} | {f"width_{k}" for k in range(stages + 1)}
    missing, unknown = sorted(expected - set(spec)), sorted(set(spec) - expected)
    if missing or unknown:
        raise InputError(f"hnerv_pair spec with {stages} stages: missing {missing or 'nothing'}, "
                         f"unknown {unknown or 'nothing'}")
    step = 1 << stages
    if spec["out_h"] % step or spec["out_w"] % step or spec["out_h"] == 0 or spec["out_w"] == 0:
        raise InputError(f"hnerv_pair output {spec['out_h']}x{spec['out_w']} must be a positive "
                         f"multiple of 2^stages = {step} in both dimensions")
    zero = [k for k in expected - {"refine_blocks"} if spec[k] == 0]
    if zero:
        raise InputError(f"hnerv_pair spec values must be positive: {', '.join(sorted(zero))}")
    return spec


def tensor_shapes(spec: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in module order (what ``state_dict`` holds)."""
    spec = validate_spec(spec)
    s, w = spec["stages"], [spec[f"width_{k}"] for k in range(spec["stages"] + 1)]
    gh, gw = spec["out_h"] >> s, spec["out_w"] >> s
    shapes = {"stem.weight": (w[0] * gh * gw, spec["latent_dim"]), "stem.bias": (w[0] * gh * gw,),
              "stem_act.alpha": (w[0],)}
    for k in range(s):
        shapes[f"stages.{k}.conv.weight"] = (4 * w[k + 1], w[k], 3, 3)
        shapes[f"stages.{k}.conv.bias"] = (4 * w[k + 1],)
        shapes[f"stages.{k}.act.alpha"] = (w[k + 1],)
    for k in range(spec["refine_blocks"]):
        shapes[f"refine.{k}.conv1.weight"] = (w[s], w[s], 3, 3)
        shapes[f"refine.{k}.conv1.bias"] = (w[s],)
        shapes[f"refine.{k}.act.alpha"] = (w[s],)
        shapes[f"refine.{k}.conv2.weight"] = (w[s], w[s], 3, 3)
        shapes[f"refine.{k}.conv2.bias"] = (w[s],)
    shapes["head.weight"] = (3 * FRAMES, w[s], 3, 3)
    shapes["head.bias"] = (3 * FRAMES,)
    return shapes


def param_count(spec: Mapping[str, int] | None = None) -> int:
    """Number of decoder parameters of ``spec`` (the default when None); latents not included."""
    return sum(int(np.prod(shape)) for shape in tensor_shapes(spec or HNERV_PAIR_DEFAULT).values())


LATENTS = "latents"


# the header's parameters in wire order: the frame count, the fixed keys, then width_0 .. width_<MAX_STAGES>
# (a spec's widths stop at width_<stages>, so its parameters are always a prefix of this list)
PARAMS = (FRAMES_PARAM, "latent_dim", "out_h", "out_w", "stages", "refine_blocks",
          *(f"width_{k}" for k in range(MAX_STAGES + 1)))


def archive_layout(params: Mapping[str, int]) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of an archive whose header carries ``params`` (spec + frames), in schema
    order: the decoder (weights, then vectors), the latents, the two sidecars."""
    spec, frames = split_params(params)
    pairs = pairs_for(frames)
    return [*network_first(tensor_shapes(spec)), (LATENTS, (pairs, spec["latent_dim"])), *sidecar_entries(pairs)]


HNERV_PAIR_SCHEMA = TensorSchema(SPEC_ID, params=PARAMS, layout=archive_layout, defaults=HNERV_PAIR_DEFAULT)
register_schema(HNERV_PAIR_SCHEMA)


def archive_schema(spec: Mapping[str, int]) -> TensorSchema:
    """The registered tensor schema (it covers every valid spec)."""
    validate_spec(spec)
    return HNERV_PAIR_SCHEMA


def architecture(spec: Mapping[str, int], frames: int) -> Architecture:
    """The archive header's architecture: id 1 with the spec and the video's frame count."""
    return Architecture(SPEC_ID, with_frames(validate_spec(spec), frames))
