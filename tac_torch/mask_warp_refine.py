"""``mask_warp`` after training: the low-bit model, pose test-time optimisation, a QAT fine-tune
with the optimised poses, and the output-bias sidecar.

    trained network (float) + stored codes (class maps, poses)
      --lowbit: weights and poses through the archive's quantisers (what the archive holds)-->
      --maps: near-lossless class maps (specks flipped where the loss says they cost least),
        kept only if the exact score with the real archive bytes falls-->
      --tto_poses: the int8 poses optimised against PoseNet/SegNet through the fixed network
        (tac_torch.tto.optimise_codes; a pair keeps new poses only where its exact score falls)-->
      --finetune: QAT steps on the weights with those poses; kept only if the exact score falls-->
      --sidecar: per-pair output biases (tac_torch.refine.search_bias_codes)-->
      --pose field: per-pair coarse fields on the first frames, fitted through PoseNet
        (tac_torch.pose_field); kept only if the score with the real archive bytes falls-->
      model file (MaskWarpModel) --> archive

A model file is a ``torch.save`` dict (loadable with ``weights_only=True``): spec, network state
(float), poses (P, pose_dim) float, class_maps (P, out_h, out_w) uint8, frames, weights (the
quantizer kind) and, optionally, output_bias (P, 2, 3) and pose_field (P, 3, 3, 4) int8.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tac_core import contract
from tac_core.architectures import output_bias as bias_sidecar
from tac_core.architectures import pose_field as field_sidecar
from tac_core.architectures.mask_warp import RENDER_BATCH
from tac_core.archive.packaging import pack_zip
from tac_core.errors import InputError
from tac_core.files import atomic_output
from tac_torch.chain import ContestChain, Targets
from tac_torch.export import member_name
from tac_torch.map_steering import SteerResult, margins_from_leads, steer_maps
from tac_torch.mask_warp import MaskWarp, render_uint8
from tac_torch.mask_warp_export import POSE_SPEC, archive_specs, build_archive, check_codes
from tac_torch.quant import quantize_values, scale_and_zero
from tac_torch.refine import BiasCodes, SidecarResult, search_bias_codes
from tac_torch.scorers import TorchScorers
from tac_torch.tto import PairScores, TTOResult, TTOSettings, exact_pair_scores, optimise_codes

KEYS = ("spec", "network", "poses", "class_maps", "frames", "weights")


@dataclass(frozen=True)
class MaskWarpModel:
    """A ``mask_warp`` network and the per-pair codes its archive stores."""

    model: MaskWarp
    poses: torch.Tensor             # (P, pose_dim) float
    class_maps: np.ndarray          # (P, out_h, out_w) uint8
    frames: int
    weights: str = "int4_sym"
    output_bias: torch.Tensor | None = None
    pose_field: torch.Tensor | None = None

    def archive(self) -> bytes:
        return build_archive(self.model, self.poses, self.class_maps, self.frames, self.weights,
                             output_bias=self.output_bias, pose_field=self.pose_field)

    def archive_bytes(self) -> int:
        """Bytes of the archive.zip an export of this model writes."""
        return len(pack_zip(self.archive(), member_name("0.mkv")))


def save_model(path: Path, m: MaskWarpModel) -> Path:
    """Write a model file atomically."""
    check_codes(m.model, m.poses, m.class_maps, m.frames)
    payload = {"spec": dict(m.model.spec), "network": {k: v.detach().cpu() for k, v in m.model.state_dict().items()},
               "poses": m.poses.detach().cpu().float(), "class_maps": torch.from_numpy(m.class_maps.copy()),
               "frames": int(m.frames), "weights": m.weights}
    for sidecar, codes in ((bias_sidecar, m.output_bias), (field_sidecar, m.pose_field)):
        if codes is not None:
            payload[sidecar.NAME] = torch.from_numpy(sidecar.check_codes(codes.numpy(), len(m.poses)))
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_output(Path(path)) as f:
        f.write(buf.getvalue())
    return Path(path)


def load_model(path: Path) -> MaskWarpModel:
    """Read a model file; ``InputError`` (one sentence) when it is missing or not one."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in KEYS if k not in payload]
        if missing:
            raise InputError(f"lacks {', '.join(missing)}")
        model = MaskWarp.from_arrays(payload["spec"], {k: v.float().numpy() for k, v in payload["network"].items()})
        m = MaskWarpModel(model.eval(), payload["poses"].float(), payload["class_maps"].numpy(),
                          int(payload["frames"]), str(payload["weights"]), payload.get(bias_sidecar.NAME),
                          payload.get(field_sidecar.NAME))
        check_codes(m.model, m.poses, m.class_maps, m.frames)
        return m
    except InputError as exc:
        raise InputError(f"{path}: not a mask_warp model file: {exc}") from None
    except Exception as exc:  # torch raises many types for a missing or damaged file
        raise InputError(f"{path}: not a readable mask_warp model file ({type(exc).__name__})") from None


def lowbit(m: MaskWarpModel) -> MaskWarpModel:
    """The model as its archive decodes it: weights and poses through the archive's quantisers."""
    net = MaskWarp(m.model.spec)
    specs = archive_specs(net, m.weights)
    net.load_state_dict({k: quantize_values(v, specs[k]) for k, v in m.model.state_dict().items()})
    return replace(m, model=net.eval(), poses=quantize_values(m.poses, POSE_SPEC))


def _maps(m: MaskWarpModel, device: str) -> torch.Tensor:
    return torch.from_numpy(m.class_maps).long().to(device)


@dataclass
class PoseCodes:
    """``CodeRenderer`` over the poses: a fixed network, class maps and output biases."""

    net: MaskWarp
    maps: torch.Tensor
    bias: torch.Tensor | None
    camera: tuple[int, int] = contract.CAMERA_HW
    device: str = "cpu"
    field: torch.Tensor | None = None

    def pairs(self, codes, index):
        from tac_torch.frames import add_sidecars

        idx = index.to(self.device)
        pick = lambda c: None if c is None else c[idx].to(self.device)   # noqa: E731
        return add_sidecars(self.net(self.maps[idx], codes), pick(self.bias), pick(self.field))

    def uint8(self, codes):
        yield from render_uint8(self.net, self.maps, codes, self.device, self.camera, output_bias=self.bias,
                                pose_field=self.field)


def exact_scores(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, camera=contract.CAMERA_HW,
                 device: str = "cpu") -> PairScores:
    """Per-pair distortions of what the archive of ``m`` inflates to."""
    low = lowbit(m)
    renderer = PoseCodes(low.model.to(device), _maps(low, device), low.output_bias, camera, device, low.pose_field)
    return exact_pair_scores(renderer, low.poses.to(device), targets, scorers)


def tto_poses(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, settings: TTOSettings = TTOSettings(),
              *, camera=contract.CAMERA_HW, device: str = "cpu", show_progress: bool = True
              ) -> tuple[MaskWarpModel, TTOResult]:
    """Optimise the stored int8 poses against the scorers through the fixed low-bit network."""
    low = lowbit(m)
    scale, _ = scale_and_zero(m.poses, POSE_SPEC)
    renderer = PoseCodes(low.model.to(device), _maps(low, device), low.output_bias, camera, device, low.pose_field)
    result = optimise_codes(renderer, low.poses.to(device), scale.to(device), targets, scorers, settings,
                            chain=ContestChain(scorers, size=camera), device=device, name="tto poses",
                            show_progress=show_progress)
    new = result.codes.cpu()
    if result.changed_pairs and not torch.equal(quantize_values(new, POSE_SPEC), new):
        result.codes, result.after, result.changed_pairs = low.poses, result.before, 0   # a float16 scale edge
        new = low.poses
    return replace(m, poses=new), result


# What a fine-tune is judged on: the distortion score, or its seg term alone (for when a pose field
# follows, fitted to the new weights, and recovers the pose the fine-tune gave away).
FINETUNE_JUDGES = {"score": PairScores.score, "seg": PairScores.seg_score}


@dataclass
class FinetuneResult:
    kept: bool
    before: float                   # exact scores on the judge's terms: before, kept (= before when
    after: float                    # dropped), and the last check's (NaN: nothing ran)
    steps: int                      # steps run (fewer than asked when a check stopped the run)
    tried: float = math.nan


def finetune(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, *, steps: int, lr: float, seed: int = 0,
             pose_weight: float = 1.0, judge: str = "score", check_every: int = 0, camera=contract.CAMERA_HW,
             device: str = "cpu", show_progress: bool = True) -> tuple[MaskWarpModel, FinetuneResult]:
    """QAT steps on the weights with the stored poses fixed (one pair a step, seeded), the loss's
    pose term times ``pose_weight``; the new weights are kept only when the exact score of the
    archive they make falls, on the terms ``judge`` names (``FINETUNE_JUDGES``). With
    ``check_every`` > 0 the weights are also scored every that many steps and the run stops at the
    first check that does not beat the best so far, the given weights included: a fine-tune that
    does not help costs one check, one that does runs on while it helps."""
    from tac_core.progress import progress
    from tac_torch.losses import LossWeights, score_loss
    from tac_torch.quant import fake_quantized_params

    if judge not in FINETUNE_JUDGES:
        raise InputError(f"fine-tune judge must be one of {', '.join(FINETUNE_JUDGES)}, got {judge!r}")
    if steps < 0 or check_every < 0:
        raise InputError(f"fine-tune steps and check_every must be >= 0, got {steps} and {check_every}")
    weights, judged = LossWeights(pose=pose_weight), FINETUNE_JUDGES[judge]
    if steps == 0:                          # off: nothing to score
        return m, FinetuneResult(False, math.nan, math.nan, 0)
    before = judged(exact_scores(m, targets, scorers, camera, device))
    net = MaskWarp(m.model.spec).to(device)
    net.load_state_dict(m.model.state_dict())
    specs = {k: v for k, v in archive_specs(net, m.weights).items() if k in dict(net.named_parameters())}
    maps, poses = _maps(m, device), quantize_values(m.poses, POSE_SPEC).to(device)
    chain = ContestChain(scorers, size=camera)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best, best_score, ran = m, before, 0

    def snapshot() -> MaskWarpModel:
        copy = MaskWarp(m.model.spec)
        copy.load_state_dict({k: v.detach().cpu() for k, v in net.state_dict().items()})
        return replace(m, model=copy.eval())

    net.train()
    bar = progress(total=steps, desc="finetune qat", unit="step", disable=not show_progress)
    while ran < steps:
        bar.update(1)
        ran += 1
        index = torch.randint(len(targets), (1,), generator=gen)
        out = chain(torch.func.functional_call(net, fake_quantized_params(net, specs), (maps[index], poses[index])))
        seg_t, pose_t = targets.batch(index.numpy(), device)
        loss = score_loss(out.pose, out.seg_logits, pose_t, seg_t, weights=weights)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ran == steps or (check_every and ran % check_every == 0):
            candidate = snapshot()
            score = judged(exact_scores(candidate, targets, scorers, camera, device))
            if score >= best_score:
                break
            best, best_score = candidate, score
    bar.close()
    if best is not m:
        return best, FinetuneResult(True, before, best_score, ran, score)
    return m, FinetuneResult(False, before, before, ran, score)


def search_output_bias(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, settings: TTOSettings, *,
                       original_bytes: float, camera=contract.CAMERA_HW, device: str = "cpu",
                       show_progress: bool = True) -> tuple[MaskWarpModel, SidecarResult]:
    """Per-pair output biases, kept only when the exact score with the real archive bytes falls."""
    low = lowbit(m)
    net, maps, poses = low.model.to(device), _maps(low, device), low.poses.to(device)
    from tac_torch.frames import add_pose_field

    field = low.pose_field
    renderer = BiasCodes(lambda index: add_pose_field(net(maps[index.to(device)], poses[index.to(device)]),
                                                      None if field is None else field[index].to(device)),
                         lambda q: render_uint8(net, maps, poses, device, camera, output_bias=q, pose_field=field))
    start = (m.output_bias if m.output_bias is not None
             else torch.zeros(len(m.poses), bias_sidecar.FRAMES, bias_sidecar.CHANNELS, dtype=torch.int8))
    codes, res = search_bias_codes(renderer, start, targets, scorers, settings, original_bytes=original_bytes,
                                   archive_bytes=lambda q: replace(m, output_bias=q).archive_bytes(),
                                   camera=camera, device=device, show_progress=show_progress)
    return (replace(m, output_bias=codes) if res.kept else m), res


def fit_field(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, settings, *, original_bytes: float,
              camera=contract.CAMERA_HW, device: str = "cpu", show_progress: bool = True):
    """The pose-field sidecar fitted through PoseNet, kept only when the score with the real archive
    bytes falls (``tac_torch.pose_field.choose_pose_field``): (model, ``PoseFieldResult``). A field
    the model had is refitted; ``settings.enabled`` off returns ``m`` itself."""
    from tac_torch.frames import add_output_bias
    from tac_torch.pose_field import PoseFieldResult, choose_pose_field

    if not settings.enabled:
        return m, PoseFieldResult.off(m.archive_bytes())
    start = replace(m, pose_field=None)
    low = lowbit(start)
    net, maps, poses, bias = low.model.to(device), _maps(low, device), low.poses.to(device), low.output_bias

    def render(batch: slice) -> torch.Tensor:       # RENDER_BATCH pairs at a time, as an inflate renders them
        start, stop, _ = batch.indices(len(poses))
        parts = [net(maps[i:min(i + RENDER_BATCH, stop)], poses[i:min(i + RENDER_BATCH, stop)])
                 for i in range(start, stop, RENDER_BATCH)]
        return add_output_bias(torch.cat(parts), None if bias is None else bias[batch].to(device))

    codes, res = choose_pose_field(render, targets, scorers, settings,
                                   archive_bytes=lambda c: replace(start, pose_field=c).archive_bytes(),
                                   original_bytes=original_bytes, camera=camera, device=device,
                                   show_progress=show_progress)
    return replace(start, pose_field=codes), res


def flip_costs(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, *, camera=contract.CAMERA_HW,
               device: str = "cpu", batch: int = 4) -> np.ndarray:
    """Per pixel of the class maps, the first-order change of the training loss if the pixel took
    the class most of its neighbours share (``tac_core.archive.speck_fill``): float32 (P, h, w).
    Negative: the renderer would do better with the flip."""
    from tac_core.archive.classmap import speck_fill
    from tac_torch.losses import score_loss

    low = lowbit(m)
    net, chain = low.model.to(device), ContestChain(scorers, size=camera)
    maps, poses = _maps(low, device), low.poses.to(device)
    out = np.zeros(m.class_maps.shape, np.float32)
    n = len(targets)
    for i in range(0, n, batch):
        idx = torch.arange(i, min(n, i + batch))
        onehot = net.onehot(maps[idx]).requires_grad_(True)
        result = chain(net.from_onehot(onehot, poses[idx]))
        seg_t, pose_t = targets.batch(idx.numpy(), device)
        score_loss(result.pose, result.seg_logits, pose_t, seg_t)["loss"].backward()
        grad = onehot.grad.detach().cpu().numpy()                  # (b, K, h, w)
        for j, p in enumerate(idx.tolist()):
            fill, _ = speck_fill(m.class_maps[p])
            fill = np.clip(fill, 0, grad.shape[1] - 1).astype(np.int64)
            now = m.class_maps[p].astype(np.int64)
            g = grad[j]
            out[p] = (np.take_along_axis(g, fill[None], 0)[0] - np.take_along_axis(g, now[None], 0)[0])
    return out


@dataclass
class MapsResult:
    kept: bool
    flipped: int                    # pixels changed in the kept maps
    score_before: float             # exact scores with the real archive bytes (NaN: nothing tried)
    score_after: float
    bytes_before: int
    bytes_after: int
    steer: SteerResult | None = None    # what steering measured on the linear path, where it ran


def edit_maps(m: MaskWarpModel, targets: Targets, scorers: TorchScorers, settings, *, original_bytes: float,
              original_leads: np.ndarray | None = None, camera=contract.CAMERA_HW, device: str = "cpu",
              show_progress: bool = True) -> tuple[MaskWarpModel, MapsResult]:
    """The class maps edited as ``settings`` (``mask_warp_train.Maps``) asks: isolated specks flipped
    to their surroundings where the renderer's loss says they cost least (``flip_costs``), then
    steered (``tac_torch.map_steering``); kept only when the exact score with the real archive
    bytes improves. A ``steer_margin_floor`` needs ``original_leads``, SegNet's leads on the
    original pairs (``TorchScorers.seg_leads``)."""
    from tac_core.archive import simplify_class_maps

    bytes_before = m.archive_bytes()
    if not settings.enabled:
        return m, MapsResult(False, 0, math.nan, math.nan, bytes_before, bytes_before)
    maps, steer = m.class_maps, None
    if settings.max_flip_fraction:
        cost = flip_costs(m, targets, scorers, camera=camera, device=device)
        maps = simplify_class_maps(maps, cost, settings.max_flip_fraction)
    if settings.steer_rounds:
        margins = None
        if settings.steer_margin_floor:
            if original_leads is None:
                raise InputError("[maps] steer_margin_floor needs SegNet's leads on the original pairs")
            margins = margins_from_leads(original_leads, settings.steer_margin_floor)
        maps, steer = steer_maps(lowbit(m).model, maps, targets.seg, scorers, rounds=settings.steer_rounds,
                                 flips=settings.steer_flips, window=settings.steer_window, margins=margins,
                                 camera=camera, device=device,
                                 show_progress=show_progress)
    candidate = replace(m, class_maps=maps)
    bytes_after = candidate.archive_bytes()
    before = exact_scores(m, targets, scorers, camera, device).score(bytes_before / original_bytes)
    after = exact_scores(candidate, targets, scorers, camera, device).score(bytes_after / original_bytes)
    flipped = int((candidate.class_maps != m.class_maps).sum())
    if after < before:
        return candidate, MapsResult(True, flipped, before, after, bytes_before, bytes_after, steer)
    return m, MapsResult(False, 0, before, before, bytes_before, bytes_before, steer)


def from_training(result) -> MaskWarpModel:
    """The model a finished ``MaskWarpTrainer`` run hands over (``MaskWarpResult``)."""
    if not result.finished or result.model is None:
        raise InputError(f"training stopped at step {result.step}; rerun the same command to finish it")
    return MaskWarpModel(result.model, result.poses, result.class_maps, result.frames)
