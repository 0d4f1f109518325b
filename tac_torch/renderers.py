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

from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tac_core import contract
from tac_core.architectures.hnerv_pair import (FRAMES, HNERV_PAIR_DEFAULT, HNERV_PAIR_SCHEMA, LATENTS,  # noqa: F401
                                              MAX_STAGES, NAME, RENDER_BATCH, SPEC_ID, architecture,
                                              archive_schema, make_spec, param_count, spec_id, tensor_shapes,
                                              validate_spec)
from tac_core.errors import InputError, WeightsError

_ALPHA_FLOOR = 1e-3             # keeps the snake's 1/a finite


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


def render_uint8(module: "HnervPair", latents: torch.Tensor, device: str | torch.device = "cpu",
                 size: tuple[int, int] = contract.CAMERA_HW, output_bias: torch.Tensor | None = None,
                 pose_field: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """The frames an archive stands for: uint8 pairs ``(b, 2, H, W, 3)``, RENDER_BATCH pairs at a time.

    The inflate runtime, the ``Renderer`` interface and training's archive scoring all render
    through this loop, so all three see the same bytes. The module is moved to ``device`` in
    channels-last memory (about 1.5x faster convolutions on CPU; the bytes are defined by this loop).
    ``output_bias`` (P, 2, 3) and ``pose_field`` (P, 3, 3, 4) int codes: the archive's sidecars,
    when it has them.
    """
    from tac_torch.frames import add_sidecars, camera_pairs_uint8, rows

    module = module.to(device, memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        for i in range(0, len(latents), RENDER_BATCH):
            rendered = module(latents[i:i + RENDER_BATCH].to(device))
            batch = slice(i, i + RENDER_BATCH)
            yield camera_pairs_uint8(add_sidecars(rendered, rows(output_bias, batch, device),
                                                  rows(pose_field, batch, device)), size)


class HnervPairRenderer:
    """The ``tac_core.interfaces.Renderer`` for ``hnerv_pair``: arrays in, uint8 camera pairs out."""

    def __init__(self, spec: Mapping[str, int] | None = None, device: str = "cpu"):
        self.spec = {**validate_spec(spec or HNERV_PAIR_DEFAULT), "renderer_id": SPEC_ID}
        self.device = device

    def render(self, params: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray],
               samples: Sequence[int]) -> np.ndarray:
        """Pairs ``(len(samples), 2, 874, 1164, 3)`` uint8, rendered from the latents of ``samples``."""
        spec = {k: v for k, v in self.spec.items() if k != "renderer_id"}
        module = HnervPair.from_arrays(spec, params)
        if LATENTS not in codes:
            raise InputError(f"hnerv_pair codes need a {LATENTS!r} table")
        latents = torch.as_tensor(np.asarray(codes[LATENTS], dtype=np.float32))[list(samples)]
        out = [pairs.cpu().numpy() for pairs in render_uint8(module, latents, self.device)]
        return np.concatenate(out) if out else np.zeros((0, FRAMES, *contract.CAMERA_HW, 3), np.uint8)
