"""``hnerv_pair`` after training: latent test-time optimisation and the sidecars.

    model file (float decoder, latents)
      --archive view: decoder weights and latents through the archive's quantisers-->
      tto_latents: optimise the stored int8 latents through the exact quantised decoder
        (tac_torch.tto.optimise_codes; a pair keeps new latents only where its exact score falls)
      search_output_bias: per-pair, per-frame RGB offsets (tac_core.architectures.output_bias),
        found the same way, kept only when the exact score with the real archive bytes falls
      fit_field: per-pair coarse colour fields on the first frames, fitted through PoseNet
        (tac_torch.pose_field), kept only when the score with the real archive bytes falls
      --> model file (latents x scale, the decoder unchanged, output_bias and pose_field codes or none)

Each step returns the model it was given when it cannot improve it (``fit_field`` refits a field
the model had), so running them never makes the measured score worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from tac_core import contract
from tac_core.architectures import output_bias as bias_sidecar
from tac_core.archive.packaging import pack_zip
from tac_torch.chain import ContestChain, Targets
from tac_torch.export import LATENT_SPEC, ModelFile, archive_specs, member_name
from tac_torch.frames import add_output_bias, add_pose_field, add_sidecars, rows
from tac_torch.pose_field import FieldSettings, PoseFieldResult, choose_pose_field
from tac_torch.quant import quantize_values, scale_and_zero
from tac_torch.renderers import HnervPair, render_uint8
from tac_torch.scorers import TorchScorers
from tac_torch.tto import TTOResult, TTOSettings, optimise_codes

# Estimated coded bits of one output-bias code (a mostly-zero int8 table): what a pair's
# acceptance charges for its codes; the final keep-or-drop uses the real archive bytes.
BIAS_BITS_ZERO, BIAS_BITS_NONZERO = 0.3, 7.0


def archive_view(mf: ModelFile, device: str = "cpu") -> tuple[HnervPair, torch.Tensor, torch.Tensor]:
    """The decoder and latents as the archive decodes them, and the latents' per-dimension scale."""
    net = HnervPair(mf.model.spec)
    specs = archive_specs(net)
    net.load_state_dict({k: quantize_values(v, specs[k]) for k, v in mf.model.state_dict().items()})
    latents = quantize_values(mf.latents, LATENT_SPEC)
    scale, _ = scale_and_zero(mf.latents, LATENT_SPEC)
    return net.to(device).eval(), latents.to(device), scale.to(device)


def _bias_codes(mf: ModelFile, pairs: int) -> torch.Tensor:
    return (mf.output_bias.to(torch.int8) if mf.output_bias is not None
            else torch.zeros(pairs, bias_sidecar.FRAMES, bias_sidecar.CHANNELS, dtype=torch.int8))


@dataclass
class LatentCodes:
    """``CodeRenderer`` over the latents: a fixed quantised decoder, output biases and pose field."""

    net: HnervPair
    bias: torch.Tensor              # (P, 2, 3) int8
    camera: tuple[int, int] = contract.CAMERA_HW
    device: str = "cpu"
    field: torch.Tensor | None = None   # (P, 3, 3, 4) int8, or None

    def pairs(self, codes, index):
        field = None if self.field is None else self.field[index].to(self.device)
        return add_sidecars(self.net(codes), self.bias[index].to(self.device), field)

    def uint8(self, codes):
        bias = self.bias if bool(self.bias.any()) else None
        yield from render_uint8(self.net, codes, self.device, self.camera, output_bias=bias, pose_field=self.field)


@dataclass
class BiasCodes:
    """``CodeRenderer`` over output-bias codes (P, 6) of any renderer: ``base(index)`` gives the
    renderer's float pairs without biases (no gradient needed: only the codes move), ``render(q)``
    the exact uint8 frames of all pairs with int8 codes ``q`` (P, 2, 3) (None: no sidecar)."""

    base: Callable[[torch.Tensor], torch.Tensor]
    render: Callable[[torch.Tensor | None], Iterator[torch.Tensor]]

    def pairs(self, codes, index):
        with torch.no_grad():
            base = self.base(index)
        return add_output_bias(base, codes.view(-1, bias_sidecar.FRAMES, bias_sidecar.CHANNELS))

    def uint8(self, codes):
        q = codes.round().to(torch.int8).view(-1, bias_sidecar.FRAMES, bias_sidecar.CHANNELS)
        yield from self.render(q if bool(q.any()) else None)


def hnerv_bias_codes(net: HnervPair, latents: torch.Tensor, camera=contract.CAMERA_HW, device="cpu",
                     field: torch.Tensor | None = None) -> BiasCodes:
    """The output-bias ``CodeRenderer`` of a fixed ``hnerv_pair`` decoder and latents (and pose field)."""
    def base(index: torch.Tensor) -> torch.Tensor:
        return add_pose_field(net(latents[index.to(latents.device)]),
                              None if field is None else field[index].to(latents.device))

    return BiasCodes(base, lambda q: render_uint8(net, latents, device, camera, output_bias=q, pose_field=field))


def _replace(mf: ModelFile, **changes) -> ModelFile:
    return mf._replace(**changes)


def tto_latents(mf: ModelFile, targets: Targets, scorers: TorchScorers, settings: TTOSettings = TTOSettings(),
                *, camera: tuple[int, int] = contract.CAMERA_HW, device: str = "cpu",
                show_progress: bool = True) -> tuple[ModelFile, TTOResult]:
    """Optimise the stored latents against the scorers through the exact quantised decoder."""
    net, latents, scale = archive_view(mf, device)
    renderer = LatentCodes(net, _bias_codes(mf, len(latents)), camera, device, mf.pose_field)
    result = optimise_codes(renderer, latents, scale, targets, scorers, settings,
                            chain=ContestChain(scorers, size=camera), device=device, name="tto latents",
                            show_progress=show_progress)
    new = result.codes.cpu()
    if result.changed_pairs and not torch.equal(quantize_values(new, LATENT_SPEC), new):
        # the archive would requantise these latents to other values (a float16 scale edge):
        # keep the old ones rather than ship codes that were not measured
        result.codes, result.after, result.changed_pairs = latents.cpu(), result.before, 0
        new = latents.cpu()
    return _replace(mf, latents=new), result


def archive_bytes(mf: ModelFile) -> int:
    """Bytes of the archive.zip that exporting ``mf`` writes."""
    return len(pack_zip(mf.archive(), member_name("0.mkv")))


def _bias_byte_cost(q: torch.Tensor) -> np.ndarray:
    nonzero = (q != 0).sum(dim=1).cpu().numpy().astype(np.float64)
    return (nonzero * BIAS_BITS_NONZERO + (q.shape[1] - nonzero) * BIAS_BITS_ZERO) / 8.0


@dataclass
class SidecarResult:
    """What the output-bias search kept and measured (scores include the real archive bytes)."""

    kept: bool
    score_before: float
    score_after: float
    bytes_before: int
    bytes_after: int
    pairs_with_bias: int
    tto: TTOResult | None           # None when the search was disabled


def search_bias_codes(renderer: BiasCodes, start: torch.Tensor, targets: Targets, scorers: TorchScorers,
                      settings: TTOSettings, *, original_bytes: float,
                      archive_bytes: Callable[[torch.Tensor | None], int], camera=contract.CAMERA_HW,
                      device: str = "cpu", show_progress: bool = True) -> tuple[torch.Tensor | None, SidecarResult]:
    """Search output-bias codes from ``start`` (P, 2, 3) int8; ``archive_bytes(codes or None)`` is the
    archive.zip size with them. Returns the codes to keep (None: no sidecar) and what was measured:
    they are kept only when the exact score with the real archive bytes improves."""
    pairs = start.shape[0]
    old = start if bool(start.any()) else None
    if settings.max_epochs == 0:                 # disabled: keep what there is, score nothing
        n = archive_bytes(old)
        return old, SidecarResult(False, math.nan, math.nan, n, n, int((start != 0).flatten(1).any(dim=1).sum()),
                                  None)
    flat = start.reshape(pairs, -1).float()
    settings = TTOSettings(**{**settings.__dict__, "rate_per_byte": contract.RATE_WEIGHT / original_bytes})
    result = optimise_codes(renderer, flat.to(device), torch.ones(1, flat.shape[1], device=device), targets,
                            scorers, settings, chain=ContestChain(scorers, size=camera), device=device,
                            name="sidecar output bias", byte_cost=_bias_byte_cost, show_progress=show_progress)
    codes = result.codes.cpu().round().to(torch.int8).view(pairs, bias_sidecar.FRAMES, bias_sidecar.CHANNELS)
    new = codes if bool(codes.any()) else None
    bytes_before, bytes_after = archive_bytes(old), archive_bytes(new)
    before = result.before.score(bytes_before / original_bytes)
    after = result.after.score(bytes_after / original_bytes)
    if after < before:
        n_bias = int((codes != 0).flatten(1).any(dim=1).sum())
        return new, SidecarResult(True, before, after, bytes_before, bytes_after, n_bias, result)
    return old, SidecarResult(False, before, before, bytes_before, bytes_before, 0, result)


def search_output_bias(mf: ModelFile, targets: Targets, scorers: TorchScorers,
                       settings: TTOSettings = TTOSettings(lr=2.0), *, original_bytes: float,
                       camera: tuple[int, int] = contract.CAMERA_HW, device: str = "cpu",
                       show_progress: bool = True) -> tuple[ModelFile, SidecarResult]:
    """Search per-pair output biases of an ``hnerv_pair`` model; keep them only when the exact
    score with the real archive bytes improves on the model without them."""
    net, latents, _ = archive_view(mf, device)
    codes, res = search_bias_codes(hnerv_bias_codes(net, latents, camera, device, mf.pose_field),
                                   _bias_codes(mf, len(latents)),
                                   targets, scorers, settings, original_bytes=original_bytes,
                                   archive_bytes=lambda q: archive_bytes(_replace(mf, output_bias=q)),
                                   camera=camera, device=device, show_progress=show_progress)
    return (_replace(mf, output_bias=codes) if res.kept else mf), res


def fit_field(mf: ModelFile, targets: Targets, scorers: TorchScorers, settings: FieldSettings = FieldSettings(), *,
              original_bytes: float, camera: tuple[int, int] = contract.CAMERA_HW, device: str = "cpu",
              show_progress: bool = True) -> tuple[ModelFile, PoseFieldResult]:
    """The pose-field sidecar of an ``hnerv_pair`` model fitted through PoseNet, kept only when the
    score with the real archive bytes falls (``tac_torch.pose_field.choose_pose_field``): (model,
    ``PoseFieldResult``). A field the model had is refitted; ``settings.enabled`` off returns ``mf``."""
    if not settings.enabled:
        return mf, PoseFieldResult.off(archive_bytes(mf))
    start = _replace(mf, pose_field=None)
    net, latents, _ = archive_view(start, device)

    def render(batch: slice) -> torch.Tensor:
        return add_output_bias(net(latents[batch]), rows(start.output_bias, batch, device))

    codes, res = choose_pose_field(render, targets, scorers, settings,
                                   archive_bytes=lambda c: archive_bytes(_replace(start, pose_field=c)),
                                   original_bytes=original_bytes, camera=camera, device=device,
                                   show_progress=show_progress)
    return _replace(start, pose_field=codes), res
