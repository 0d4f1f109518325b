"""``mask_warp`` as data: its spec (names -> integers), parameter shapes and archive schema.

Backend-neutral (numpy only). The archive stores, per pair, the SegNet class map of
the pair's second frame and the pair's 6-d pose; a small network paints the second
frame from the class map and warps it into the first by a flow predicted from the pose:

    class map (H, W) --one-hot (+2 coordinate channels), area-pooled / 2^down-->
      --stem, levels x [conv stride 2], levels x [upsample, concat skip, conv]: every conv
        followed by a class-conditioned norm-->  (width_0, H / 2^down, W / 2^down)
      --bilinear up, conv + class norm at (H, W), 1x1 head, 255 sigmoid--> second frame (3, H, W)
    class map + pose --flow net at (H / 2^flow_down, W / 2^flow_down), FiLM by the pose,
      a flow basis per pose dimension--> flow (2, H, W) in pixels, bilinear up
    second frame --warp by flow--> + sigmoid(gate) * residual --> first frame (3, H, W)

A class-conditioned norm normalises each channel (instance norm, no affine) and then
applies ``x * (1 + gamma[class]) + beta[class]`` with ``gamma``, ``beta`` learnt
``(classes, channels)`` tables gathered by the class map at the layer's resolution.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from tac_core.architectures.layout import (FRAMES_PARAM, network_first, pairs_for, sidecar_entries, split_params,
                                           with_frames)
from tac_core.archive import Architecture, TensorSchema, register_schema
from tac_core.archive.format import ARCH_MASK_WARP_V1
from tac_core.errors import InputError

NAME = "mask_warp"
SPEC_ID = ARCH_MASK_WARP_V1
MAX_LEVELS = 6
MAX_DOWN = 4                    # the U-Net's resolution: out / 2^down
MAX_FLOW_DOWN = 6               # the flow net's resolution: out / 2^flow_down
MAX_CLASSES = 256               # class maps are stored as uint8
FRAMES = 2
RGB = 3
GATED_RESIDUAL = RGB + 1        # the residual head's outputs: 3 residual channels and a gate
# Frames of an archive are defined as rendered RENDER_BATCH pairs at a time from pair 0 (convolutions
# round differently for other batch sizes): one, so that a pair's frames depend on its own codes
# alone, and because on a CPU a batch of 8 costs twice as much per pair (the full-resolution
# layers no longer fit the cache).
RENDER_BATCH = 1

MASK_WARP_DEFAULT: dict[str, int] = {
    "classes": 5, "pose_dim": 6, "coords": 1, "out_h": 384, "out_w": 512,
    "down": 1, "levels": 2, "width_0": 16, "width_1": 24, "width_2": 32, "out_width": 12,
    "flow_down": 4, "flow_width": 16, "residual_width": 8,
}

POSES = "poses"                 # (P, pose_dim) float, int8 per dimension in the archive
CLASS_MAPS = "class_maps"       # (P, out_h, out_w) uint8 class indices, stored losslessly
_FIXED = ("classes", "pose_dim", "coords", "out_h", "out_w", "down", "levels", "out_width",
          "flow_down", "flow_width", "residual_width")


def spec_id(spec: Mapping[str, int] | None = None) -> int:
    """The archive architecture id of ``mask_warp`` v1 (the same for every valid spec)."""
    if spec is not None:
        validate_spec(spec)
    return SPEC_ID


def make_spec(**overrides: int) -> dict[str, int]:
    """The default spec with ``overrides``; changing ``levels`` drops or adds ``width_k`` keys
    (new ones double the last width), so ``make_spec(levels=1, out_h=24, out_w=32)`` is valid."""
    spec = dict(MASK_WARP_DEFAULT)
    levels = overrides.get("levels", spec["levels"])
    if isinstance(levels, int) and 0 < levels <= MAX_LEVELS:
        for k in range(MAX_LEVELS + 1):
            if k > levels:
                spec.pop(f"width_{k}", None)
            elif f"width_{k}" not in spec:
                spec[f"width_{k}"] = 2 * spec[f"width_{k - 1}"]
    spec.update(overrides)
    return validate_spec(spec)


def validate_spec(spec: Mapping[str, int]) -> dict[str, int]:
    """A checked copy of ``spec``; ``InputError`` naming the first problem."""
    if not isinstance(spec, Mapping):
        raise InputError(f"a mask_warp spec is a mapping of names to integers, got {type(spec).__name__}")
    spec = dict(spec)
    for k, v in spec.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InputError(f"mask_warp spec {k!r} must be a non-negative integer, got {v!r}")
    levels = spec.get("levels")
    if levels is None or not 1 <= levels <= MAX_LEVELS:
        raise InputError(f"mask_warp spec needs 'levels' in 1..{MAX_LEVELS}, got {levels!r}")
    expected = set(_FIXED) | {f"width_{k}" for k in range(levels + 1)}
    missing, unknown = sorted(expected - set(spec)), sorted(set(spec) - expected)
    if missing or unknown:
        raise InputError(f"mask_warp spec with {levels} levels: missing {missing or 'nothing'}, "
                         f"unknown {unknown or 'nothing'}")
    zero = sorted(k for k in expected - {"coords", "down", "flow_down"} if spec[k] == 0)
    if zero:
        raise InputError(f"mask_warp spec values must be positive: {', '.join(zero)}")
    if spec["coords"] not in (0, 1):
        raise InputError(f"mask_warp spec 'coords' is 0 or 1 (coordinate channels off or on), got {spec['coords']}")
    if not 2 <= spec["classes"] <= MAX_CLASSES:
        raise InputError(f"mask_warp spec 'classes' must be in 2..{MAX_CLASSES} (class maps are uint8), "
                         f"got {spec['classes']}")
    if spec["down"] > MAX_DOWN or spec["flow_down"] > MAX_FLOW_DOWN:
        raise InputError(f"mask_warp spec needs 'down' <= {MAX_DOWN} and 'flow_down' <= {MAX_FLOW_DOWN}, "
                         f"got {spec['down']} and {spec['flow_down']}")
    for key, shift in (("down + levels", spec["down"] + levels), ("flow_down", spec["flow_down"])):
        step = 1 << shift
        if spec["out_h"] % step or spec["out_w"] % step:
            raise InputError(f"mask_warp output {spec['out_h']}x{spec['out_w']} must be a multiple of "
                             f"2^({key}) = {step} in both dimensions")
    return spec


def input_channels(spec: Mapping[str, int]) -> int:
    """Channels of the class-map input: one-hot classes plus the coordinate channels."""
    return spec["classes"] + 2 * spec["coords"]


def tensor_shapes(spec: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in module order (what ``state_dict`` holds)."""
    spec = validate_spec(spec)
    L, k = spec["levels"], spec["classes"]
    w = [spec[f"width_{i}"] for i in range(L + 1)]
    shapes: dict[str, tuple[int, ...]] = {}

    def block(name: str, cin: int, cout: int) -> None:
        shapes[f"{name}.conv.weight"] = (cout, cin, 3, 3)
        shapes[f"{name}.norm.gamma"] = (k, cout)
        shapes[f"{name}.norm.beta"] = (k, cout)

    block("stem", input_channels(spec), w[0])
    for i in range(L):
        block(f"down.{i}", w[i], w[i + 1])
    for i in range(L):                       # up.0 is the deepest: width_L + width_{L-1} -> width_{L-1}
        j = L - 1 - i
        block(f"up.{i}", w[j + 1] + w[j], w[j])
    block("fine", w[0], spec["out_width"])
    shapes["head.weight"] = (RGB, spec["out_width"], 1, 1)
    shapes["head.bias"] = (RGB,)
    f, p = spec["flow_width"], spec["pose_dim"]
    shapes["flow_in.weight"] = (f, input_channels(spec), 3, 3)
    shapes["flow_in.bias"] = (f,)
    shapes["flow_film.weight"] = (2 * f, p)
    shapes["flow_film.bias"] = (2 * f,)
    shapes["flow_mid.weight"] = (f, f, 3, 3)
    shapes["flow_mid.bias"] = (f,)
    shapes["flow_out.weight"] = (2 * (p + 1), f, 3, 3)
    shapes["flow_out.bias"] = (2 * (p + 1),)
    r = spec["residual_width"]
    shapes["residual_in.weight"] = (r, RGB + 2 + k, 3, 3)
    shapes["residual_in.bias"] = (r,)
    shapes["residual_out.weight"] = (GATED_RESIDUAL, r, 1, 1)
    shapes["residual_out.bias"] = (GATED_RESIDUAL,)
    return shapes


def param_count(spec: Mapping[str, int] | None = None) -> int:
    """Number of network parameters of ``spec`` (the default when None); poses and maps not included."""
    return sum(int(np.prod(shape)) for shape in tensor_shapes(spec or MASK_WARP_DEFAULT).values())


def resize_class_maps(maps: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """uint8 class maps ``(P, h, w)`` at ``(out_h, out_w)`` by nearest neighbour (row ``i`` takes
    source row ``i * h // out_h``): the identity at the same size, plain subsampling at 1/n."""
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.dtype != np.uint8:
        raise InputError(f"class maps must be uint8 (P, H, W), got {maps.dtype} {maps.shape}")
    h, w = maps.shape[1:]
    if (h, w) == (out_h, out_w):
        return maps
    rows = np.arange(out_h) * h // out_h
    cols = np.arange(out_w) * w // out_w
    return np.ascontiguousarray(maps[:, rows][:, :, cols])


# the header's parameters in wire order: the frame count, the fixed keys, then width_0 .. width_<MAX_LEVELS>
# (a spec's widths stop at width_<levels>, so its parameters are always a prefix of this list)
PARAMS = (FRAMES_PARAM, *_FIXED, *(f"width_{k}" for k in range(MAX_LEVELS + 1)))


def archive_layout(params: Mapping[str, int]) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of an archive whose header carries ``params`` (spec + frames), in schema
    order: the network (weights, then vectors), poses, class maps, the two sidecars."""
    spec, frames = split_params(params)
    spec = validate_spec(spec)
    p = pairs_for(frames)
    return [*network_first(tensor_shapes(spec)), (POSES, (p, spec["pose_dim"])),
            (CLASS_MAPS, (p, spec["out_h"], spec["out_w"])), *sidecar_entries(p)]


MASK_WARP_SCHEMA = TensorSchema(SPEC_ID, params=PARAMS, layout=archive_layout, defaults=MASK_WARP_DEFAULT)
register_schema(MASK_WARP_SCHEMA)


def archive_schema(spec: Mapping[str, int]) -> TensorSchema:
    """The registered tensor schema (it covers every valid spec)."""
    validate_spec(spec)
    return MASK_WARP_SCHEMA


def architecture(spec: Mapping[str, int], frames: int) -> Architecture:
    """The archive header's architecture: id 2 with the spec and the video's frame count."""
    return Architecture(SPEC_ID, with_frames(validate_spec(spec), frames))
