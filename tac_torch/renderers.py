"""Renderers in torch. ``hnerv_pair``: a per-pair latent decoded into both frames of the pair.

    latents (B, latent_dim)
      --linear + snake--> (B, width_0, out_h/2^S, out_w/2^S)          S = stages
      --S x [conv3x3 -> pixel-shuffle x2 -> snake]--> (B, width_S, out_h, out_w)
      --refine_blocks x [x + conv3x3(snake(conv3x3(x)))]--> same
      --conv3x3 head, 255 * sigmoid--> (B, 6, out_h, out_w) --> pairs (B, 2, 3, out_h, out_w) in 0..255

The architecture is data: a spec (names to integers) under archive
architecture id 1 (``hnerv_pair`` v1, docs/archive-format.md section 3). The
network holds only the decoder; the per-pair latents are codes kept by the
caller (``init_latents``). Snake activations (``x + sin^2(a x) / a``, ``a``
learnt per channel) are periodic, which suits textures and edges.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tac_core import contract
from tac_core.archive import Architecture, TensorSchema, register_schema
from tac_core.archive.format import ARCH_HNERV_PAIR_V1
from tac_core.errors import InputError, WeightsError

NAME = "hnerv_pair"
SPEC_ID = ARCH_HNERV_PAIR_V1
MAX_STAGES = 8
FRAMES = 2                      # frames rendered per latent: the pair
_ALPHA_FLOOR = 1e-3             # keeps the snake's 1/a finite

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


# --- the archive's view -----------------------------------------------------

LATENTS = "latents"


def _schema_entries(stages: int, refine_blocks: int) -> tuple:
    spec = make_spec(stages=stages, refine_blocks=refine_blocks, out_h=1 << stages, out_w=1 << stages)
    entries = [(name, (None,) * len(shape)) for name, shape in tensor_shapes(spec).items()]
    return tuple(entries + [(LATENTS, (None, None))])


# v1 fixes the topology (6 stages, 1 refinement block) and leaves every dimension free,
# so any widths or latent size are stored by position; another topology is stored by name.
HNERV_PAIR_SCHEMA = TensorSchema(SPEC_ID, _schema_entries(6, 1))
register_schema(HNERV_PAIR_SCHEMA)


def archive_schema(spec: Mapping[str, int]) -> TensorSchema | None:
    """The registered tensor schema when ``spec`` has its topology, else None (store by name)."""
    spec = validate_spec(spec)
    return HNERV_PAIR_SCHEMA if (spec["stages"], spec["refine_blocks"]) == (6, 1) else None


def architecture(spec: Mapping[str, int]) -> Architecture:
    """The archive header's architecture: id 1 with the spec inline."""
    return Architecture(SPEC_ID, validate_spec(spec))


# --- the network --------------------------------------------------------------

class Snake(nn.Module):
    """``x + sin(a x)^2 / a`` with ``a`` per channel: periodic, monotone-ish, smooth."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.abs().clamp_min(_ALPHA_FLOOR).view(1, -1, *([1] * (x.dim() - 2)))
        return x + torch.sin(a * x).pow(2) / a


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)
        self.act = Snake(cout)

    def forward(self, x):
        return self.act(F.pixel_shuffle(self.conv(x), 2))


class _Refine(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.act = Snake(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)       # starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


class HnervPair(nn.Module):
    """The ``hnerv_pair`` decoder built from a spec: latents (B, latent_dim) -> pairs (B, 2, 3, H, W)."""

    def __init__(self, spec: Mapping[str, int] | None = None, seed: int | None = None):
        super().__init__()
        self.spec = validate_spec(HNERV_PAIR_DEFAULT if spec is None else spec)
        s, w = self.spec["stages"], [self.spec[f"width_{k}"] for k in range(self.spec["stages"] + 1)]
        self.grid = (self.spec["out_h"] >> s, self.spec["out_w"] >> s)
        with torch.random.fork_rng(enabled=seed is not None):   # seeded init leaves the global RNG alone
            if seed is not None:
                torch.manual_seed(seed)
            self.stem = nn.Linear(self.spec["latent_dim"], w[0] * self.grid[0] * self.grid[1])
            self.stem_act = Snake(w[0])
            self.stages = nn.ModuleList(_Stage(w[k], w[k + 1]) for k in range(s))
            self.refine = nn.ModuleList(_Refine(w[s]) for _ in range(self.spec["refine_blocks"]))
            self.head = nn.Conv2d(w[s], 3 * FRAMES, 3, padding=1)

    @property
    def latent_dim(self) -> int:
        return self.spec["latent_dim"]

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Pairs ``(B, 2, 3, out_h, out_w)``, float in (0, 255)."""
        if latents.dim() != 2 or latents.shape[1] != self.latent_dim:
            raise InputError(f"latents must have shape (B, {self.latent_dim}), got {tuple(latents.shape)}")
        x = self.stem(latents).view(latents.shape[0], -1, *self.grid)
        x = self.stem_act(x)
        for stage in self.stages:
            x = stage(x)
        for block in self.refine:
            x = block(x)
        x = 255.0 * torch.sigmoid(self.head(x))
        return x.view(x.shape[0], FRAMES, 3, *x.shape[-2:])

    render_pairs = forward

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameters as float32 numpy arrays by name (what an archive stores)."""
        return {k: v.detach().cpu().float().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def from_arrays(cls, spec: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> "HnervPair":
        """The decoder of ``spec`` holding ``arrays`` (checked name for name and shape for shape)."""
        module = cls(spec)
        expected = tensor_shapes(module.spec)
        problems = [k for k in expected if k not in arrays or tuple(np.shape(arrays[k])) != expected[k]]
        extra = sorted(set(arrays) - set(expected) - {LATENTS})
        if problems or extra:
            raise WeightsError(f"hnerv_pair weights do not fit the spec: missing or misshapen "
                               f"{problems[:4] or 'none'}, unexpected {extra[:4] or 'none'}")
        module.load_state_dict({k: torch.as_tensor(np.asarray(arrays[k], dtype=np.float32)) for k in expected})
        return module


def init_latents(n_pairs: int, spec: Mapping[str, int] | None = None, seed: int = 0,
                 scale: float = 0.1) -> torch.Tensor:
    """A seeded latent table ``(n_pairs, latent_dim)`` to start training from."""
    dim = validate_spec(spec or HNERV_PAIR_DEFAULT)["latent_dim"]
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_pairs, dim, generator=gen) * scale


class HnervPairRenderer:
    """The ``tac_core.interfaces.Renderer`` for ``hnerv_pair``: arrays in, uint8 camera pairs out."""

    def __init__(self, spec: Mapping[str, int] | None = None, device: str = "cpu", batch: int = 8):
        self.spec = {**validate_spec(spec or HNERV_PAIR_DEFAULT), "renderer_id": SPEC_ID}
        self.device, self.batch = device, batch

    def render(self, params: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray],
               samples: Sequence[int]) -> np.ndarray:
        """Pairs ``(len(samples), 2, 874, 1164, 3)`` uint8, rendered from the latents of ``samples``."""
        from tac_torch.chain import camera_pairs_uint8

        spec = {k: v for k, v in self.spec.items() if k != "renderer_id"}
        module = HnervPair.from_arrays(spec, params).to(self.device).eval()
        if LATENTS not in codes:
            raise InputError(f"hnerv_pair codes need a {LATENTS!r} table")
        latents = torch.as_tensor(np.asarray(codes[LATENTS], dtype=np.float32))[list(samples)]
        out = []
        with torch.inference_mode():
            for i in range(0, len(latents), self.batch):
                frames = module(latents[i:i + self.batch].to(self.device))
                out.append(camera_pairs_uint8(frames).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, FRAMES, *contract.CAMERA_HW, 3), np.uint8)
