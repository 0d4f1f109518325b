"""Training an ``hnerv_pair`` decoder and its per-pair latents through the contest chain.

    frames --pair_targets (exact path, cached)--> targets (seg classes, pose)
    step s: pairs = randperm(P, seed=(recipe.seed, s))[:batch_pairs], this rank's slice
      latents[pairs] --decoder (int8 fake-quantised in QAT stages)--> ContestChain --> score_loss
      --backward, all-reduce gradients (DDP)--> Muon (hidden conv weights) + AdamW (the rest, latents)
      --> EMA of decoder and latents; checkpoint every N steps and at each stage's end
    end: the EMA at each stage's end is a candidate; the one whose exported form scores best is kept

Sampling depends only on (seed, step) and every state is checkpointed, so a
resumed run ends with the same weights as one that ran straight through.
Under ``torchrun`` each rank renders a disjoint slice of a step's pairs;
gradients (decoder and latents) are averaged across ranks before every
update, so all ranks hold identical weights (the arithmetic of
``DistributedDataParallel``, written out because QAT runs the decoder
through ``torch.func.functional_call``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from tac_core import contract
from tac_core.errors import InputError
from tac_core.progress import progress
from tac_torch import checkpoint as ckpt
from tac_torch.chain import ContestChain, Targets, pair_targets, to_device
from tac_torch.export import LATENT_SPEC, archive_specs, save_model_file
from tac_torch.losses import RunningMean, rate_bits, score_loss
from tac_torch.quant import fake_quantize, fake_quantized_params, quantize_values, weight_specs
from tac_torch.recipe import Recipe
from tac_torch.renderers import LATENTS, HnervPair, init_latents, render_uint8
from tac_torch.sampling import sampled_pairs
from tac_torch.scorers import TorchScorers

MODEL_FILE = "model.pt"
MODEL_FORMAT = 1
HIDDEN_CONV = ("stages.", "refine.")          # Muon's parameters: the hidden convolution weights


@dataclass(frozen=True)
class World:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> World:
    """Join the process group ``torchrun`` describes (NCCL on CUDA, gloo otherwise), if any."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


class MatrixMuon:
    """``torch.optim.Muon`` (2-D parameters only) over ``(out, in*kh*kw)`` views of conv weights.

    The views share the weights' storage, so Muon's in-place updates change the
    convolution weights themselves; gradients are viewed the same way before each step.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], lr: float, weight_decay: float):
        self.params = list(params)
        self.views = [torch.nn.Parameter(p.data.view(p.shape[0], -1)) for p in self.params]
        self.optimizer = torch.optim.Muon(self.views, lr=lr, weight_decay=weight_decay)

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def step(self) -> None:
        for view, p in zip(self.views, self.params):
            view.grad = None if p.grad is None else p.grad.view(view.shape)
        self.optimizer.step()

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state) -> None:
        self.optimizer.load_state_dict(state)


@dataclass
class Candidate:
    """A decoder state and latent table that could become the final model."""

    name: str
    decoder: dict[str, torch.Tensor]
    latents: torch.Tensor


def select_final(candidates: Sequence[Candidate], score_fn: Callable[[Candidate], float]
                 ) -> tuple[Candidate, dict[str, float]]:
    """The candidate with the lowest ``score_fn`` (ties: the later one), and every score by name."""
    if not candidates:
        raise InputError("no candidates to choose a final model from")
    scores = {c.name: float(score_fn(c)) for c in candidates}
    best = min(reversed(candidates), key=lambda c: scores[c.name])
    return best, scores


def archive_score_fn(spec: Mapping[str, int], targets: Targets, scorers: TorchScorers, *,
                     camera: tuple[int, int] = contract.CAMERA_HW, device: str = "cpu",
                     original_bytes: int = contract.CONTEST_VIDEO_BYTES,
                     archive_bytes: Callable[[Candidate], int] | None = None) -> Callable[[Candidate], float]:
    """A ``score_fn`` that scores a candidate as the archive decodes it: weights and latents through
    the archive's quantisers, every pair rendered to uint8, scored by the evaluator's exact path.

    The rate is ``archive_bytes(candidate)`` when given (``tac compress`` passes the real exported
    archive's size), else the entropy estimate ``losses.rate_bits``.
    """
    def score(c: Candidate) -> float:
        net = HnervPair(spec).to(device).eval()
        specs = archive_specs(net)
        net.load_state_dict({k: quantize_values(v.to(device), specs[k]) for k, v in c.decoder.items()})
        latents = quantize_values(c.latents.to(device), specs[LATENTS])
        pose, seg = [], []
        for pairs in render_uint8(net, latents, device, camera):   # the frames the archive inflates to
            out = scorers.outputs(pairs)
            pose.append(out["pose"])
            seg.append(out["seg"])
        d_pose, d_seg = scorers.distortion({"pose": targets.pose, "seg": targets.seg},
                                           {"pose": np.concatenate(pose), "seg": np.concatenate(seg)})
        if archive_bytes is not None:
            nbytes = float(archive_bytes(c))
        else:
            params = {**c.decoder, LATENTS: c.latents}
            nbytes = float(rate_bits({k: v.float() for k, v in params.items()}, specs)) / 8
        return contract.score(float(d_seg.mean()), float(d_pose.mean()), nbytes / original_bytes)
    return score


SHOW_EVERY = 10          # training progress bars show the loss parts every this many steps


def targets_digest(targets: Targets) -> str:
    """sha256 of the targets (shapes and values): checkpoints record it so a run never resumes on
    another clip."""
    h = hashlib.sha256(f"{targets.seg.shape}|{targets.pose.shape}|".encode())
    h.update(np.ascontiguousarray(targets.seg).tobytes())
    h.update(np.ascontiguousarray(targets.pose).tobytes())
    return h.hexdigest()


def pixel_targets(frames: np.ndarray, spec: Mapping[str, int], batch: int = 16) -> torch.Tensor:
    """The clip's pairs at the renderer's output size, uint8 ``(P, 2, 3, out_h, out_w)`` (area-averaged)."""
    from tac_torch.chain import as_pairs

    pairs = as_pairs(frames)
    out = []
    for i in range(0, len(pairs), batch):
        x = torch.from_numpy(np.ascontiguousarray(pairs[i:i + batch])).permute(0, 1, 4, 2, 3).float()
        small = torch.nn.functional.interpolate(x.flatten(0, 1), size=(spec["out_h"], spec["out_w"]),
                                                mode="area")
        out.append(small.round().clamp(0, 255).to(torch.uint8).view(len(x), 2, 3, *small.shape[-2:]))
    return torch.cat(out)


def load_frames(video: Path | np.ndarray) -> np.ndarray:
    """uint8 frames (N, H, W, 3) of a video path (decoded as the contest does) or an array."""
    if isinstance(video, np.ndarray):
        return video
    from tac_core.video import decode_frames

    frames = list(decode_frames(Path(video)))
    if not frames:
        raise InputError(f"{video}: the video has no frames")
    return np.stack(frames)


@dataclass
class TrainResult:
    """Where a run stopped and, when it finished, the model it kept."""

    step: int
    finished: bool
    checkpoint: Path | None
    model_path: Path | None = None
    chosen: str | None = None
    scores: dict[str, float] | None = None


class Trainer:
    """One training run of ``recipe`` on a clip's targets; ``run`` trains, checkpoints and finishes."""

    def __init__(self, recipe: Recipe, video: Path | np.ndarray | None, scorers: TorchScorers, out_dir: Path,
                 *, device: str = "cpu", world: World | None = None, targets: Targets | None = None,
                 show_progress: bool = True):
        self.recipe, self.scorers, self.out_dir = recipe, scorers, Path(out_dir)
        self.device, self.world, self.show_progress = device, world or World(), show_progress
        if targets is None:
            if video is None:
                raise InputError("training needs a video (or precomputed targets)")
            frames = load_frames(video)
            self.frames = len(frames)
            targets = pair_targets(frames, scorers)
            self.pixel_targets = (pixel_targets(frames, recipe.renderer_spec())
                                  if any(s.pixel > 0 for s in recipe.stages) else None)
            del frames
        else:
            self.frames = 2 * len(targets)
            self.pixel_targets = None
        self.targets, self.data_key = targets, targets_digest(targets)
        self.target_tensors = targets.to(device)
        self.n_pairs = len(targets)
        n = min(recipe.batch_pairs, self.n_pairs)
        self.batch = n - n % self.world.size
        if self.batch == 0:
            raise InputError(f"{self.world.size} processes need at least {self.world.size} pairs per step; "
                             f"the clip has {self.n_pairs} and the recipe asks for {recipe.batch_pairs}")
        self.original_bytes = int(round(contract.contest_equivalent_original_bytes(2 * self.n_pairs)))
        self.spec = recipe.renderer_spec()
        self.net = HnervPair(self.spec, seed=recipe.seed).to(device)
        self.latents = torch.nn.Parameter(init_latents(self.n_pairs, self.spec, seed=recipe.seed + 1,
                                                       scale=recipe.latent_scale).to(device))
        self.specs = weight_specs(self.net, "int8_sym")
        self.chain = ContestChain(scorers, size=recipe.camera, path=recipe.camera_path)
        self.pose_mse = RunningMean()
        hidden = [p for n, p in self.net.named_parameters() if n.startswith(HIDDEN_CONV) and p.dim() == 4]
        hidden_ids = {id(p) for p in hidden}
        rest = [p for p in self.net.parameters() if id(p) not in hidden_ids]
        first = recipe.stages[0]
        self.muon = MatrixMuon(hidden, first.lr_muon, first.weight_decay)
        self.adamw = torch.optim.AdamW([
            {"params": rest, "lr": first.lr_decoder, "weight_decay": first.weight_decay, "name": "decoder"},
            {"params": [self.latents], "lr": first.lr_latents, "weight_decay": 0.0, "name": "latents"}])
        self.ema = {k: v.detach().clone() for k, v in self._live().items()}
        self.candidates: dict[str, Candidate] = {}
        self.step = 0
        self._sync_initial()

    # --- state ------------------------------------------------------------------

    def _live(self) -> dict[str, torch.Tensor]:
        return {**{f"decoder.{k}": v for k, v in self.net.state_dict().items()}, LATENTS: self.latents.data}

    def _sync_initial(self) -> None:
        if self.world.size > 1:
            import torch.distributed as dist

            for t in self._live().values():
                dist.broadcast(t, src=0)
            for k, v in self._live().items():
                self.ema[k].copy_(v)

    def ema_candidate(self, name: str) -> Candidate:
        dec = {k[len("decoder."):]: v.detach().cpu().clone() for k, v in self.ema.items() if k != LATENTS}
        return Candidate(name, dec, self.ema[LATENTS].detach().cpu().clone())

    def state(self) -> dict:
        cpu = lambda d: {k: v.detach().cpu() for k, v in d.items()}   # noqa: E731
        return {"recipe_fingerprint": self.recipe.fingerprint(), "recipe_name": self.recipe.name,
                "recipe": json.dumps(self.recipe.as_dict(), sort_keys=True), "data_key": self.data_key,
                "decoder": cpu(self.net.state_dict()), "latents": self.latents.detach().cpu(),
                "ema": cpu(self.ema), "adamw": self.adamw.state_dict(), "muon": self.muon.state_dict(),
                "rng": ckpt.rng_state(), "pose_mse": self.pose_mse.as_float(),
                "candidates": {c.name: {"decoder": c.decoder, "latents": c.latents}
                               for c in self.candidates.values()}}

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (``CheckpointError`` when it does not fit)."""
        state = ckpt.load_checkpoint(path, self.recipe.fingerprint(), self.data_key,
                                     recipe_name=self.recipe.name)
        try:
            self.net.load_state_dict(state["decoder"])
            self.latents.data.copy_(state["latents"])
            for k, v in state["ema"].items():
                self.ema[k].copy_(v)
            self.adamw.load_state_dict(state["adamw"])
            self.muon.load_state_dict(state["muon"])
            self.candidates = {n: Candidate(n, c["decoder"], c["latents"]) for n, c in state["candidates"].items()}
            ckpt.set_rng_state(state["rng"])
            self.pose_mse.value = state.get("pose_mse")
            self.step = int(state["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ckpt.CheckpointError(f"{path}: checkpoint does not fit this run ({exc})") from None

    # --- one step -----------------------------------------------------------------

    def pairs_at(self, step: int) -> torch.Tensor:
        """This rank's pair indices at ``step``: a slice of ``sampled_pairs``."""
        pairs = sampled_pairs(self.recipe.seed, step, self.n_pairs, self.batch, self.recipe.sampling)
        return pairs[self.world.rank::self.world.size]

    def losses(self, index: torch.Tensor, stage) -> dict[str, torch.Tensor]:
        """The loss parts on pairs ``index`` (quantised decoder and latents when ``stage.qat``)."""
        weights = stage.loss_weights()
        if stage.qat:
            params = fake_quantized_params(self.net, self.specs)
            latents = fake_quantize(self.latents, LATENT_SPEC)[to_device(index, self.device)]
        else:
            params = dict(self.net.named_parameters())
            latents = self.latents[to_device(index, self.device)]
        rendered = torch.func.functional_call(self.net, params, (latents,))
        pixel = None
        if stage.pixel > 0:
            if self.pixel_targets is None:
                raise InputError(f"stage {stage.name!r} has a pixel loss, which needs the clip's frames")
            target = to_device(self.pixel_targets[index], self.device).float()
            pixel = stage.pixel * ((rendered - target) / 255.0).pow(2).mean()
            if stage.seg == 0 and stage.pose == 0:        # a pure warm-up: no scorer pass at all
                zero = pixel.detach() * 0
                return {"loss": pixel, "pixel": pixel, "seg": zero, "pose": zero, "rate": zero}
        out = self.chain(rendered)
        seg_t, pose_t = self.target_tensors.batch(index)
        rate = weights.rate > 0
        parts = score_loss(out.pose, out.seg_logits, pose_t, seg_t, weights=weights,
                           params={**dict(self.net.named_parameters()), LATENTS: self.latents} if rate else None,
                           specs={**self.specs, LATENTS: LATENT_SPEC} if rate else None,
                           original_bytes=self.original_bytes,
                           pose_reference=self.pose_mse.value if stage.pose_linear else None)
        if pixel is not None:
            parts["loss"] = parts["loss"] + pixel
            parts["pixel"] = pixel
        return parts

    def _all_reduce_grads(self) -> None:
        import torch.distributed as dist

        params = [p for p in [*self.net.parameters(), self.latents]]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world.size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def train_step(self) -> dict[str, float]:
        """One optimiser step at ``self.step``; returns the loss parts as floats."""
        return {k: float(v) for k, v in self._step().items()}

    def _step(self) -> dict[str, torch.Tensor]:
        """One optimiser step at ``self.step``; the loss parts stay tensors (on a GPU, reading
        them back would make every step wait for the last)."""
        _, stage, k = self.recipe.stage_at(self.step)
        f = stage.lr_factor(k)
        for group in self.adamw.param_groups:
            lr = stage.lr_latents if group["name"] == "latents" else stage.lr_decoder
            group["lr"] = lr * f
            if group["name"] == "decoder":
                group["weight_decay"] = stage.weight_decay
        for group in self.muon.param_groups:
            group["lr"], group["weight_decay"] = stage.lr_muon * f, stage.weight_decay
        self.net.train()
        parts = self.losses(self.pairs_at(self.step), stage)
        self.adamw.zero_grad(set_to_none=True)
        for p in self.muon.params:
            p.grad = None
        parts["loss"].backward()
        if self.world.size > 1:
            self._all_reduce_grads()
        self.muon.step()
        self.adamw.step()
        with torch.no_grad():
            for key, value in self._live().items():
                self.ema[key].lerp_(value, 1.0 - stage.ema_decay)
        if "pose_mse" in parts:
            self.pose_mse.update(parts["pose_mse"])
        self.step += 1
        return {k: v.detach() for k, v in parts.items()}

    # --- the run ----------------------------------------------------------------------

    def run(self, *, resume: bool = False, stop_after: int | None = None,
            score_fn: Callable[[Candidate], float] | None = None) -> TrainResult:
        """Train to the recipe's end (or until ``stop_after`` steps in all), checkpointing as it goes;
        at the end choose among the stage-end EMA candidates with ``score_fn`` (default:
        ``archive_score_fn``) and write ``model.pt``."""
        last = ckpt.resume_point(self.out_dir, resume)
        if last is not None:
            self.restore(last)
        total = self.recipe.total_steps
        end = total if stop_after is None else min(total, stop_after)
        ends = set(self.recipe.stage_ends())
        bar = progress(total=total, desc=f"train {self.recipe.name}", unit="step",
                       disable=not (self.show_progress and self.world.is_main))
        bar.update(self.step)
        saved = last if resume else None
        try:
            while self.step < end:
                index, stage, _ = self.recipe.stage_at(self.step)
                parts = self._step()
                if self.step % SHOW_EVERY == 0:
                    shown = {k: float(parts[k]) for k in ("loss", "seg", "pose", "rate")}
                    bar.set_postfix(stage=stage.name, loss=f"{shown['loss']:.4g}", seg=f"{shown['seg']:.3g}",
                                    pose=f"{shown['pose']:.3g}", rate=f"{shown['rate']:.3g}", refresh=False)
                bar.update(1)
                if self.step in ends:
                    self.candidates[stage.name] = self.ema_candidate(stage.name)
                if self.step in ends or self.step % self.recipe.checkpoint_every == 0 or self.step == end:
                    saved = self.save()
        finally:
            bar.close()
        if self.step < total:
            return TrainResult(self.step, False, saved)
        return self.finish(score_fn, saved)

    def save(self) -> Path | None:
        """Write this step's checkpoint (rank 0 only)."""
        if not self.world.is_main:
            return ckpt.checkpoint_path(self.out_dir, self.step)
        return ckpt.save_checkpoint(self.out_dir, self.step, self.state())

    def archive_bytes(self, candidate: Candidate) -> int:
        """Bytes of the archive.zip that exporting ``candidate`` would write (the rate's numerator)."""
        from tac_core.archive.packaging import pack_zip
        from tac_torch.export import build_archive, member_name

        net, latents = candidate_model(self.spec, candidate, self.frames)
        return len(pack_zip(build_archive(net, latents, self.frames), member_name("0.mkv")))

    def finish(self, score_fn: Callable[[Candidate], float] | None, saved: Path | None) -> TrainResult:
        """Choose the final candidate and write ``model.pt`` (rank 0)."""
        candidates = [self.candidates[s.name] for s in self.recipe.stages if s.name in self.candidates]
        if score_fn is None:
            score_fn = archive_score_fn(self.spec, self.targets, self.scorers, camera=self.recipe.camera,
                                        device=self.device, original_bytes=self.original_bytes,
                                        archive_bytes=self.archive_bytes)
        best, scores = select_final(candidates, score_fn)
        path = self.out_dir / MODEL_FILE
        if self.world.is_main:
            write_model(path, self.spec, best, self.recipe, scores, self.frames)
        return TrainResult(self.step, True, saved, path, best.name, scores)


def candidate_model(spec: Mapping[str, int], candidate: Candidate, frames: int) -> tuple[HnervPair, torch.Tensor]:
    """The decoder and latent table an export writes for ``candidate``: an odd frame count gets one
    more latent (a copy of the last) for its unpaired last frame, which no sample scores."""
    net = HnervPair(spec)
    net.load_state_dict({k: v.detach().cpu().float() for k, v in candidate.decoder.items()})
    latents = candidate.latents.detach().cpu().float()
    if frames % 2:
        latents = torch.cat([latents, latents[-1:]])
    return net.eval(), latents


def write_model(path: Path, spec: Mapping[str, int], candidate: Candidate, recipe: Recipe,
                scores: Mapping[str, float], frames: int) -> None:
    """``model.pt`` (the format of ``tac_torch.export.save_model_file``), with the recipe and scores."""
    net, latents = candidate_model(spec, candidate, frames)
    save_model_file(path, net, latents, frames, extra={
        "format": MODEL_FORMAT, "chosen": candidate.name, "scores": dict(scores),
        "recipe": json.dumps(recipe.as_dict(), sort_keys=True), "recipe_fingerprint": recipe.fingerprint()})


def train(recipe: Recipe, video: Path | np.ndarray, scorers: TorchScorers, out_dir: Path, *,
          device: str = "cpu", resume: bool = False, stop_after: int | None = None,
          score_fn: Callable[[Candidate], float] | None = None, show_progress: bool = True) -> TrainResult:
    """Train ``recipe`` on ``video`` (a path or uint8 frames) into ``out_dir``; joins a ``torchrun``
    process group when one is described by the environment."""
    world = init_distributed(device)
    if world.size > 1 and device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    trainer = Trainer(recipe, video, scorers, out_dir, device=device, world=world, show_progress=show_progress)
    return trainer.run(resume=resume, stop_after=stop_after, score_fn=score_fn)
