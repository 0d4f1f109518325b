"""The ``mask_warp`` renderer in torch: a class map and a pose per pair -> the pair's two frames.

    class_maps (B, H, W) long, poses (B, pose_dim)
      second: one-hot (+ coords) --U-Net with class-conditioned norms--> 255 sigmoid --> (B, 3, H, W)
      flow:   one-hot (+ coords) at H/2^flow_down, FiLM(pose) --> basis (B, 2(pose_dim+1), h, w)
              --sum_j [pose, 1]_j basis_j, bilinear up--> (B, 2, H, W) pixels (dx, dy)
      first:  warp(second, flow) + sigmoid(gate) * residual            (the gated residual head)
    --> pairs (B, 2, 3, H, W) in 0..255

The architecture is data (``tac_core.architectures.mask_warp``, archive id 2). The
class maps and poses are per-pair codes the caller keeps; the module holds the
network only. This file and ``tac_torch/mask_warp_io.py`` are vendored into a
submission, so inflate renders with the code training ran.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tac_core import contract
from tac_core.architectures.mask_warp import (CLASS_MAPS, FRAMES, MASK_WARP_DEFAULT, MASK_WARP_SCHEMA,  # noqa: F401
                                             NAME, POSES, RENDER_BATCH, RGB, SPEC_ID, architecture,
                                             archive_schema, input_channels, make_spec, param_count,
                                             resize_class_maps, spec_id, tensor_shapes, validate_spec)
from tac_core.errors import InputError, WeightsError

GATE_BIAS = -4.0                # the gate starts nearly shut: the first frame starts as the pure warp
RESIDUAL_RANGE = 128.0          # the residual is RESIDUAL_RANGE * tanh(.) in 0..255 units
FLOW_INPUT_SCALE = 1 / 8        # flow in pixels, scaled for the residual head's input
_NORM_EPS = 1e-5


# --- the warp -------------------------------------------------------------------

def _padded_size(n: int) -> int:
    """The smallest ``2^k + 1 >= n``: with ``align_corners=True`` its normalised coordinates are
    ``x / 2^(k-1) - 1``, exact in float32, so integer pixel positions are sampled exactly."""
    return 2 if n <= 2 else (1 << (n - 2).bit_length()) + 1


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out[y, x] = image[y + flow_y, x + flow_x]``, bilinear, border padding.

    ``image`` (B, C, H, W), ``flow`` (B, 2, H, W) in pixels (channel 0 = x, 1 = y). Zero flow
    returns ``image`` exactly and an integer flow moves it by whole pixels exactly: the image
    is edge-padded to ``2^k + 1`` pixels a side so that grid_sample's normalised coordinates
    (``align_corners=True``) are exact binary fractions. The padding repeats the last row and
    column, which is what border padding samples there anyway.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[-2:] != image.shape[-2:] \
            or flow.shape[0] != image.shape[0]:
        raise InputError(f"warp needs image (B, C, H, W) and flow (B, 2, H, W), got "
                         f"{tuple(image.shape)} and {tuple(flow.shape)}")
    h, w = image.shape[-2:]
    ph, pw = _padded_size(h), _padded_size(w)
    if (ph, pw) != (h, w):
        image = F.pad(image, (0, pw - w, 0, ph - h), mode="replicate")
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / (pw - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (ph - 1)) - 1.0
    out = F.grid_sample(image, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out


# --- class-conditioned normalisation ------------------------------------------------

class ClassNorm(nn.Module):
    """Instance norm without affine, then ``x * (1 + gamma[class]) + beta[class]`` per pixel."""

    def __init__(self, classes: int, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(classes, channels))
        self.beta = nn.Parameter(torch.zeros(classes, channels))

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, h, w); ``onehot`` (B, classes, h, w) at the same resolution."""
        x = F.instance_norm(x, eps=_NORM_EPS)
        gamma = torch.einsum("bkhw,kc->bchw", onehot, self.gamma)
        beta = torch.einsum("bkhw,kc->bchw", onehot, self.beta)
        return x * (1 + gamma) + beta


class _Block(nn.Module):
    """conv 3x3 (no bias: the norm removes it) -> class norm -> SiLU."""

    def __init__(self, cin: int, cout: int, classes: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = ClassNorm(classes, cout)

    def forward(self, x, onehot):
        return F.silu(self.norm(self.conv(x), onehot))


def _nearest(onehot: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The class map at ``size`` by nearest neighbour (exact subsampling for integer factors)."""
    if tuple(onehot.shape[-2:]) == tuple(size):
        return onehot
    return F.interpolate(onehot, size=size, mode="nearest")


def _coords(b: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    ys = torch.linspace(-1, 1, h, device=like.device, dtype=like.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=like.device, dtype=like.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([xs, ys], dim=1)


# --- the network ------------------------------------------------------------------

class MaskWarp(nn.Module):
    """The ``mask_warp`` network built from a spec: (class maps, poses) -> pairs (B, 2, 3, H, W)."""

    def __init__(self, spec: Mapping[str, int] | None = None, seed: int | None = None):
        super().__init__()
        self.spec = s = validate_spec(MASK_WARP_DEFAULT if spec is None else spec)
        L, k = s["levels"], s["classes"]
        w = [s[f"width_{i}"] for i in range(L + 1)]
        f, p = s["flow_width"], s["pose_dim"]
        with torch.random.fork_rng(enabled=seed is not None):   # seeded init leaves the global RNG alone
            if seed is not None:
                torch.manual_seed(seed)
            self.stem = _Block(input_channels(s), w[0], k)
            self.down = nn.ModuleList(_Block(w[i], w[i + 1], k, stride=2) for i in range(L))
            self.up = nn.ModuleList(_Block(w[j + 1] + w[j], w[j], k) for j in reversed(range(L)))
            self.fine = _Block(w[0], s["out_width"], k)
            self.head = nn.Conv2d(s["out_width"], RGB, 1)
            self.flow_in = nn.Conv2d(input_channels(s), f, 3, padding=1)
            self.flow_film = nn.Linear(p, 2 * f)
            self.flow_mid = nn.Conv2d(f, f, 3, padding=1)
            self.flow_out = nn.Conv2d(f, 2 * (p + 1), 3, padding=1)
            self.residual_in = nn.Conv2d(RGB + 2 + k, s["residual_width"], 3, padding=1)
            self.residual_out = nn.Conv2d(s["residual_width"], RGB + 1, 1)
            for layer in (self.flow_film, self.flow_out, self.residual_out):   # start neutral: no flow,
                nn.init.zeros_(layer.weight)                                    # no FiLM, no residual
                nn.init.zeros_(layer.bias)
            with torch.no_grad():
                self.residual_out.bias[RGB] = GATE_BIAS

    @property
    def out_hw(self) -> tuple[int, int]:
        return (self.spec["out_h"], self.spec["out_w"])

    def _inputs(self, onehot: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """One-hot classes area-pooled to ``size`` (class fractions), plus coordinates."""
        x = onehot if tuple(onehot.shape[-2:]) == size else F.adaptive_avg_pool2d(onehot, size)
        return torch.cat([x, _coords(x.shape[0], *size, x)], dim=1) if self.spec["coords"] else x

    def second_frame(self, onehot: torch.Tensor) -> torch.Tensor:
        """The painted second frame ``(B, 3, H, W)`` in (0, 255) from one-hot maps ``(B, K, H, W)``."""
        s = self.spec
        size = (s["out_h"] >> s["down"], s["out_w"] >> s["down"])
        x = self.stem(self._inputs(onehot, size), _nearest(onehot, size))
        skips = [x]
        for block in self.down:
            x = block(x, _nearest(onehot, (x.shape[-2] // 2, x.shape[-1] // 2)))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1), _nearest(onehot, tuple(skip.shape[-2:])))
        if tuple(x.shape[-2:]) != self.out_hw:
            x = F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=False)
        x = self.fine(x, onehot)
        return 255.0 * torch.sigmoid(self.head(x))

    def flow(self, onehot: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """The backward flow ``(B, 2, H, W)`` in pixels: a pose-weighted sum of predicted bases."""
        s = self.spec
        size = (s["out_h"] >> s["flow_down"], s["out_w"] >> s["flow_down"])
        h = self.flow_in(self._inputs(onehot, size))
        scale, shift = self.flow_film(poses).view(len(poses), 2, -1, 1, 1).unbind(1)
        h = F.silu(h * (1 + scale) + shift)
        basis = self.flow_out(F.silu(self.flow_mid(h)))
        weights = torch.cat([poses, poses.new_ones(len(poses), 1)], dim=1)
        flow = torch.einsum("bjxhw,bj->bxhw", basis.view(len(poses), -1, 2, *size), weights)
        if size != self.out_hw:
            flow = F.interpolate(flow, size=self.out_hw, mode="bilinear", align_corners=False)
        return flow

    def first_frame(self, second: torch.Tensor, flow: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """``warp(second, flow) + sigmoid(gate) * residual``, both predicted at (H, W)."""
        warped = warp(second, flow)
        x = torch.cat([warped / 255.0 - 0.5, flow * FLOW_INPUT_SCALE, onehot], dim=1)
        out = self.residual_out(F.silu(self.residual_in(x)))
        residual, gate = RESIDUAL_RANGE * torch.tanh(out[:, :RGB]), torch.sigmoid(out[:, RGB:])
        return warped + gate * residual

    def onehot(self, class_maps: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` class indices -> float one-hot ``(B, classes, H, W)``."""
        k = self.spec["classes"]
        if class_maps.dim() != 3 or tuple(class_maps.shape[-2:]) != self.out_hw:
            raise InputError(f"class maps must have shape (B, {self.out_hw[0]}, {self.out_hw[1]}), "
                             f"got {tuple(class_maps.shape)}")
        return F.one_hot(class_maps.long().clamp(0, k - 1), k).permute(0, 3, 1, 2).float()

    def forward(self, class_maps: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """Pairs ``(B, 2, 3, out_h, out_w)``, float 0..255 (the residual may overshoot; the
        camera chain clamps)."""
        if poses.dim() != 2 or poses.shape != (len(class_maps), self.spec["pose_dim"]):
            raise InputError(f"poses must have shape ({len(class_maps)}, {self.spec['pose_dim']}), "
                             f"got {tuple(poses.shape)}")
        return self.from_onehot(self.onehot(class_maps), poses.float())

    def from_onehot(self, onehot: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """``forward`` from one-hot maps ``(B, classes, H, W)``: differentiable with respect to the
        classes (what the near-lossless class-map search reads its flip costs from)."""
        second = self.second_frame(onehot)
        first = self.first_frame(second, self.flow(onehot, poses), onehot)
        return torch.stack([first, second], dim=1)

    render_pairs = forward

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameters as float32 numpy arrays by name (what an archive stores)."""
        return {k: v.detach().cpu().float().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def from_arrays(cls, spec: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> "MaskWarp":
        """The network of ``spec`` holding ``arrays`` (checked name for name and shape for shape)."""
        module = cls(spec)
        expected = tensor_shapes(module.spec)
        problems = [k for k in expected if k not in arrays or tuple(np.shape(arrays[k])) != expected[k]]
        extra = sorted(set(arrays) - set(expected) - {POSES, CLASS_MAPS})
        if problems or extra:
            raise WeightsError(f"mask_warp weights do not fit the spec: missing or misshapen "
                               f"{problems[:4] or 'none'}, unexpected {extra[:4] or 'none'}")
        module.load_state_dict({k: torch.as_tensor(np.asarray(arrays[k], dtype=np.float32)) for k in expected})
        return module


def render_uint8(module: MaskWarp, class_maps: torch.Tensor, poses: torch.Tensor,
                 device: str | torch.device = "cpu",
                 size: tuple[int, int] = contract.CAMERA_HW,
                 output_bias: torch.Tensor | None = None, pose_field: torch.Tensor | None = None
                 ) -> Iterator[torch.Tensor]:
    """The frames an archive stands for: uint8 pairs ``(b, 2, H, W, 3)``, RENDER_BATCH pairs at a
    time (the inflate runtime, ``MaskWarpRenderer`` and the exporter's checks all render here);
    ``output_bias`` (P, 2, 3) and ``pose_field`` (P, 3, 3, 4) int codes: the archive's sidecars,
    when it has them."""
    from tac_torch.frames import add_sidecars, camera_pairs_uint8, rows

    if len(class_maps) != len(poses):
        raise InputError(f"{len(class_maps)} class maps but {len(poses)} poses; one of each per pair")
    module = module.to(device).eval()
    with torch.inference_mode():
        for i in range(0, len(poses), RENDER_BATCH):
            pairs = module(class_maps[i:i + RENDER_BATCH].to(device), poses[i:i + RENDER_BATCH].to(device))
            batch = slice(i, i + RENDER_BATCH)
            yield camera_pairs_uint8(add_sidecars(pairs, rows(output_bias, batch, device),
                                                  rows(pose_field, batch, device)), size)


class MaskWarpRenderer:
    """The ``tac_core.interfaces.Renderer`` for ``mask_warp``: arrays in, uint8 camera pairs out."""

    def __init__(self, spec: Mapping[str, int] | None = None, device: str = "cpu"):
        self.spec = {**validate_spec(spec or MASK_WARP_DEFAULT), "renderer_id": SPEC_ID}
        self.device = device

    def render(self, params: Mapping[str, np.ndarray], codes: Mapping[str, np.ndarray],
               samples: Sequence[int]) -> np.ndarray:
        """Pairs ``(len(samples), 2, 874, 1164, 3)`` uint8 from the class maps and poses of ``samples``."""
        spec = {k: v for k, v in self.spec.items() if k != "renderer_id"}
        module = MaskWarp.from_arrays(spec, params)
        missing = [k for k in (CLASS_MAPS, POSES) if k not in codes]
        if missing:
            raise InputError(f"mask_warp codes need {', '.join(repr(k) for k in missing)}")
        index = list(samples)
        maps = torch.as_tensor(np.asarray(codes[CLASS_MAPS], dtype=np.uint8)[index]).long()
        poses = torch.as_tensor(np.asarray(codes[POSES], dtype=np.float32)[index])
        out = [pairs.cpu().numpy() for pairs in render_uint8(module, maps, poses, self.device)]
        return np.concatenate(out) if out else np.zeros((0, FRAMES, *contract.CAMERA_HW, 3), np.uint8)
