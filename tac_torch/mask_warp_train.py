"""Training a ``mask_warp`` renderer through the frozen scorers, and ``compress_mask_warp``.

    frames --pair_targets (exact path, cached)--> targets: seg classes (P, 384, 512), pose (P, 12)
      --stored_codes--> class maps (P', out_h, out_w) u1, poses (P', 6); P' = ceil(N / 2)
    starts (config.starts > 1): seeds seed * starts + j, start_steps each --fewest seg errors--> one goes on
    step s: pairs = sampled_pairs(seed, s): random draws, or shuffled epochs (config.sampling)
      net(class maps, int8-quantised poses) [int4 fake-quantised weights in the QAT phase]
        --ContestChain--> score_loss --> Adam (warm-up, then cosine within each phase)
      checkpoint every N steps and at the end of each phase
    end: the network with the codes --mask_warp_export--> archive --> submission folder

The renderer always sees the poses the archive will hold (int8 per dimension), and
in the QAT phase the weights it will hold; sampling depends only on (seed, step)
and every state is checkpointed, so a resumed run ends with the same weights as one
that ran straight through.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from tac_core import contract
from tac_core.errors import InputError
from tac_core.progress import progress
from tac_torch import checkpoint as ckpt
from tac_torch.archive_io import pairs_for
from tac_torch.chain import ContestChain, Targets, pair_targets, to_device
from tac_torch.losses import LossWeights, RunningMean, score_loss
from tac_torch.mask_warp import MaskWarp, make_spec, resize_class_maps
from tac_torch.pose_field import FieldSettings
from tac_torch.mask_warp_export import POSE_SPEC, WEIGHT_KINDS, archive_specs, export_submission
from tac_torch.quant import fake_quantized_params, quantize_values
from tac_torch.recipe import Refine, check_fields, check_spec, known_keys, read_toml, training_fields
from tac_torch.sampling import sampled_pairs
from tac_torch.train import SHOW_EVERY, load_frames, targets_digest

PRESETS = ("demo", "contest")
AFTER_TRAINING = ("maps", "tto", "finetune", "sidecar", "pose_field")   # tables outside the training fingerprint


@dataclass(frozen=True)
class Maps:
    """Editing the class maps after training. Near-lossless: at most ``max_flip_fraction`` of each
    map's pixels (isolated specks) flip to their surroundings' class, cheapest for the loss first (0:
    lossless). Steering (``tac_torch.map_steering``): ``steer_rounds`` rounds of at most
    ``steer_flips`` boundary pixels per map moved to a neighbour's class where SegNet's errors
    in the (2 ``steer_window`` + 1)^2 window around them fall (0 rounds: off). With
    ``steer_margin_floor`` > 0 the steering loss asks each pixel for the original's own SegNet
    lead, clipped to that floor..2, instead of 2 for all (``map_steering.margins_from_leads``)."""

    max_flip_fraction: float = 0.0
    steer_rounds: int = 0
    steer_flips: int = 100
    steer_window: int = 2
    steer_margin_floor: float = 0.0

    def __post_init__(self):
        if not isinstance(self.max_flip_fraction, (int, float)) or not 0 <= self.max_flip_fraction <= 1:
            raise InputError(f"[maps] max_flip_fraction must be in 0..1, got {self.max_flip_fraction!r}")
        for key, low in (("steer_rounds", 0), ("steer_flips", 1), ("steer_window", 0)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(f"[maps] {key} must be an integer >= {low}, got {value!r}")
        floor = self.steer_margin_floor
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= LossWeights().margin:
            raise InputError(f"[maps] steer_margin_floor must be in 0..{LossWeights().margin:g} (0: off), "
                             f"got {floor!r}")

    @property
    def enabled(self) -> bool:
        return self.max_flip_fraction > 0 or self.steer_rounds > 0


@dataclass(frozen=True)
class Finetune:
    """QAT fine-tuning of the weights after the pose TTO, the poses fixed, the loss's pose term
    times ``pose``; kept only when the exact score improves on the terms ``judge`` names
    (``tac_torch.mask_warp_refine.FINETUNE_JUDGES``: "score" the distortion score, "seg" its seg
    term alone, for when the pose field follows). ``check_every`` > 0 also scores the weights every
    that many steps and stops at the first check that does not improve (0: one check at the end)."""

    qat_steps: int = 0
    lr: float = 3e-4
    pose: float = 1.0
    judge: str = "score"
    check_every: int = 0

    def __post_init__(self):
        from tac_torch.mask_warp_refine import FINETUNE_JUDGES

        for key in ("qat_steps", "check_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"[finetune] {key} must be an integer >= 0, got {value!r}")
        if isinstance(self.pose, bool) or not isinstance(self.pose, (int, float)) or not self.pose >= 0:
            raise InputError(f"[finetune] pose must be a number >= 0, got {self.pose!r}")
        if self.judge not in FINETUNE_JUDGES:
            raise InputError(f"[finetune] judge must be one of {', '.join(map(repr, FINETUNE_JUDGES))}, "
                             f"got {self.judge!r}")
PRESET_PREFIX = "mask_warp_"            # presets/mask_warp_<name>.toml
STARTS = "starts"                       # the training folder's subfolder for the starts' checkpoints


# --- configuration --------------------------------------------------------------------

@dataclass(frozen=True)
class MaskWarpConfig:
    """A whole ``mask_warp`` training run: spec overrides, sampling, the two phases, loss weights."""

    name: str
    spec: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0
    batch_pairs: int = 1
    sampling: str = "random"           # how steps draw their pairs: "random" or "epochs" (sampling.SAMPLINGS)
    starts: int = 1                    # > 1: that many starts (seeds seed * starts + j) train start_steps
    start_steps: int = 0               # steps each; the one with the fewest seg errors then trains on
    checkpoint_every: int = 25
    camera_h: int = contract.CAMERA_HW[0]
    camera_w: int = contract.CAMERA_HW[1]
    camera_path: str = "exact"         # the chain's camera round trip: "exact" or "linear" (chain.PATHS)
    float_steps: int = 60              # phase 1: float weights
    qat_steps: int = 30                # phase 2: weights fake-quantised as the archive stores them
    lr: float = 3e-3                   # Adam, phase 1 (after the warm-up)
    lr_qat: float = 1e-3               # Adam, phase 2
    lr_floor: float = 0.1              # each phase's cosine decays to lr_floor x its rate
    warmup: int = 5                    # linear warm-up steps at the start of phase 1
    weights: str = "int4_sym"          # the network's quantizer (rank >= 2 tensors)
    seg: float = contract.SEG_WEIGHT
    pose: float = 1.0
    pose_linear: bool = True           # the pose sqrt linearised at a running mean of the MSE (losses.pose_term)
    rate: float = contract.RATE_WEIGHT
    margin: float = 2.0
    temperature: float = 0.5
    boost: float = 3.0
    maps: Maps = field(default_factory=Maps)                # [maps]: near-lossless class maps
    tto: Refine = field(default_factory=Refine)            # [tto]: pose test-time optimisation
    finetune: Finetune = field(default_factory=lambda: Finetune())   # [finetune]: QAT after the TTO
    sidecar: Refine = field(default_factory=Refine)        # [sidecar]: output-bias search
    pose_field: FieldSettings = field(default_factory=FieldSettings)   # [pose_field]: the pose-field sidecar
    source: str = "<config>"           # where it was read from (not part of the fingerprint)

    def __post_init__(self):
        check_fields(self, "[train]", self.source, skip=("spec", "source", *AFTER_TRAINING))
        for table in AFTER_TRAINING:
            check_fields(getattr(self, table), f"[{table}]", self.source)
        for key in ("float_steps", "qat_steps", "warmup"):
            if getattr(self, key) < 0:
                raise InputError(f"{self.source}: [train] key {key!r} must be >= 0, got {getattr(self, key)}")
        if self.total_steps < 1:
            raise InputError(f"{self.source}: [train] needs float_steps + qat_steps >= 1")
        if self.starts > 1 and not 1 <= self.start_steps < self.total_steps:
            raise InputError(f"{self.source}: [train] starts = {self.starts} needs start_steps in "
                             f"1..{self.total_steps - 1} (fewer than float_steps + qat_steps)")
        if not self.lr > 0 or self.lr_qat < 0:
            raise InputError(f"{self.source}: [train] needs lr > 0 and lr_qat >= 0")
        if self.weights not in WEIGHT_KINDS:
            raise InputError(f"{self.source}: [train] key 'weights' must be one of {', '.join(WEIGHT_KINDS)}, "
                             f"got {self.weights!r}")
        check_spec(self, make_spec)

    @property
    def total_steps(self) -> int:
        return self.float_steps + self.qat_steps

    @property
    def camera(self) -> tuple[int, int]:
        return (self.camera_h, self.camera_w)

    def with_total_steps(self, total: int) -> "MaskWarpConfig":
        """The same config with its two phases scaled to ``total`` steps in all (for quick runs)."""
        if total < 1:
            raise InputError(f"{self.source}: needs at least 1 step, got {total}")
        qat = min(total - 1, round(self.qat_steps * total / self.total_steps)) if self.float_steps else total
        starts, start_steps = self.starts, self.start_steps
        if starts > 1:       # the starts scale too; a one-step run has no room for them
            start_steps = min(total - 1, max(1, round(start_steps * total / self.total_steps)))
            starts, start_steps = (starts, start_steps) if start_steps else (1, 0)
        return dataclasses.replace(self, float_steps=total - qat, qat_steps=qat,
                                   warmup=min(self.warmup, total - qat), starts=starts, start_steps=start_steps)

    def renderer_spec(self) -> dict[str, int]:
        return make_spec(**self.spec)

    def loss_weights(self) -> LossWeights:
        return LossWeights(seg=self.seg, pose=self.pose, rate=self.rate, margin=self.margin,
                           temperature=self.temperature, boost=self.boost)

    def phase_at(self, step: int) -> tuple[bool, float]:
        """(QAT on?, learning rate) at global ``step``: warm-up, then a cosine per phase."""
        qat = step >= self.float_steps
        k, n, lr = (step - self.float_steps, self.qat_steps, self.lr_qat) if qat else (step, self.float_steps, self.lr)
        warm = 0 if qat else self.warmup
        if k < warm:
            return qat, lr * (k + 1) / warm
        t = min(1.0, (k - warm) / max(1, n - warm))
        return qat, lr * (self.lr_floor + (1 - self.lr_floor) * 0.5 * (1 + math.cos(math.pi * t)))

    def as_dict(self) -> dict[str, Any]:
        """The training part (what checkpoints must match): none of the tables after training
        (``recipe.training_fields``: default values of later keys are left out)."""
        return training_fields(self, AFTER_TRAINING)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of everything but ``source``."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def config_from_dict(data: Mapping[str, Any], source: str = "<config>") -> MaskWarpConfig:
    """A ``MaskWarpConfig`` from parsed TOML (tables ``train`` and ``spec``); unknown keys are errors."""
    unknown = sorted(set(data) - {"train", "spec", *AFTER_TRAINING})
    if unknown:
        raise InputError(f"{source}: unknown table {unknown[0]!r} (known: train, spec, "
                         f"{', '.join(AFTER_TRAINING)})")
    head = known_keys(data.get("train", {}), MaskWarpConfig, "[train]", source, exclude=AFTER_TRAINING)
    for table, cls in (("maps", Maps), ("tto", Refine), ("finetune", Finetune), ("sidecar", Refine),
                       ("pose_field", FieldSettings)):
        if table in data:
            if not isinstance(data[table], dict):
                raise InputError(f"{source}: [{table}] must be a table")
            head[table] = cls(**known_keys(data[table], cls, f"[{table}]", source))
    head.setdefault("name", Path(source).stem)
    spec = data.get("spec", {})
    if not isinstance(spec, dict):
        raise InputError(f"{source}: [spec] must be a table of integers")
    try:
        return MaskWarpConfig(spec=spec, source=source, **head)
    except TypeError as exc:
        raise InputError(f"{source}: [train]: {exc}") from None


def load_config(preset_or_path: str | Path) -> MaskWarpConfig:
    """A config from a preset name (``demo``, ``contest``, or ``mask_warp_demo`` ...) or a TOML path."""
    presets = {n: f"{PRESET_PREFIX}{n}.toml" for n in PRESETS}
    presets.update({f"{PRESET_PREFIX}{n}": f for n, f in list(presets.items())})
    data, source = read_toml(preset_or_path, presets, "mask_warp config")
    return config_from_dict(data, source)


# --- the stored codes -----------------------------------------------------------------

def stored_codes(targets: Targets, spec: Mapping[str, int], frames: int) -> tuple[np.ndarray, torch.Tensor]:
    """The per-pair codes an archive stores for a video of ``frames`` frames: class maps
    ``(P, out_h, out_w)`` uint8 (the targets' SegNet classes, nearest-resized) and float poses
    ``(P, pose_dim)`` (the first values of PoseNet's output), P = ceil(frames / 2). An odd frame
    count's last pair, which no sample scores, repeats the last scored pair's codes."""
    p = pairs_for(frames)
    if len(targets) not in (p, p - 1) or len(targets) == 0:
        raise InputError(f"{frames} frames make {frames // 2} scored pairs; the targets have {len(targets)}")
    maps = resize_class_maps(np.asarray(targets.seg, dtype=np.uint8), spec["out_h"], spec["out_w"])
    if int(maps.max(initial=0)) >= spec["classes"]:
        raise InputError(f"the targets hold class {int(maps.max())}; the spec has {spec['classes']} classes")
    poses = torch.from_numpy(np.ascontiguousarray(targets.pose[:, :spec["pose_dim"]], dtype=np.float32))
    if len(targets) < p:
        maps, poses = np.concatenate([maps, maps[-1:]]), torch.cat([poses, poses[-1:]])
    return np.ascontiguousarray(maps), poses


# --- the run ------------------------------------------------------------------------------

@dataclass
class MaskWarpResult:
    """Where a run stopped; when finished, the network and the codes an export needs."""

    step: int
    finished: bool
    checkpoint: Path | None
    model: MaskWarp | None = None
    poses: torch.Tensor | None = None           # (P, pose_dim) float, as the archive quantises them
    class_maps: np.ndarray | None = None        # (P, out_h, out_w) uint8
    frames: int = 0
    seed: int = 0                               # the training seed in effect (the start chosen)
    starts: tuple = ()                          # with starts: (seed, seg disagreement) of each start


class MaskWarpTrainer:
    """One training run of ``config`` on a clip; ``run`` trains, checkpoints and finishes."""

    def __init__(self, config: MaskWarpConfig, video: Path | np.ndarray | None, scorers, out_dir: Path, *,
                 device: str = "cpu", targets: Targets | None = None, frames: int | None = None,
                 show_progress: bool = True):
        self.config, self.scorers, self.out_dir = config, scorers, Path(out_dir)
        self.device, self.show_progress = device, show_progress
        if targets is None:
            if video is None:
                raise InputError("training needs a video (or precomputed targets)")
            frames = load_frames(video)
            self.frames = len(frames)
            targets = pair_targets(frames, scorers)
            del frames
        else:            # precomputed targets: the clip's frame count, when given, covers an odd last frame
            self.frames = 2 * len(targets) if frames is None else int(frames)
            if self.frames // 2 != len(targets):
                raise InputError(f"{self.frames} frames make {self.frames // 2} pairs; the targets have {len(targets)}")
        self.targets, self.data_key = targets, targets_digest(targets)
        self.target_tensors = targets.to(device)
        self.n_pairs = len(targets)
        self.batch = min(config.batch_pairs, self.n_pairs)
        self.spec = config.renderer_spec()
        self.class_maps, self.poses = stored_codes(targets, self.spec, self.frames)
        self.maps_t = torch.from_numpy(self.class_maps).long().to(device)
        self.poses_q = quantize_values(self.poses, POSE_SPEC).to(device)      # what the archive will hold
        self.original_bytes = int(round(contract.contest_equivalent_original_bytes(2 * self.n_pairs)))
        self.chain = ContestChain(scorers, size=config.camera, path=config.camera_path)
        self._begin(config.seed)
        self.specs = {k: v for k, v in archive_specs(self.net, config.weights).items() if k in
                      dict(self.net.named_parameters())}

    def _begin(self, seed: int) -> None:
        """A fresh network, optimiser and step count for training seed ``seed`` (initialisation and
        sampling)."""
        self.seed = seed
        self.net = MaskWarp(self.spec, seed=seed).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        self.pose_mse = RunningMean()
        self.step = 0
        self.starts: list[tuple[int, float]] = []

    def state(self) -> dict:
        return {"recipe_fingerprint": self.config.fingerprint(), "recipe_name": self.config.name,
                "config": json.dumps(self.config.as_dict(), sort_keys=True), "data_key": self.data_key,
                "network": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "adam": self.optimizer.state_dict(), "rng": ckpt.rng_state(), "pose_mse": self.pose_mse.as_float(),
                "seed": self.seed, "starts": [list(s) for s in self.starts], "step": self.step}

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (``CheckpointError`` when it does not fit)."""
        state = ckpt.load_checkpoint(path, self.config.fingerprint(), self.data_key,
                                     recipe_name=self.config.name)
        self.restore_state(state, path)

    def restore_state(self, state: dict, path: Path | str = "<state>") -> None:
        """Continue from ``state`` (``state()``'s dict, or a checkpoint's)."""
        try:
            self.net.load_state_dict(state["network"])
            self.optimizer.load_state_dict(state["adam"])
            ckpt.set_rng_state(state["rng"])
            self.pose_mse.value = state.get("pose_mse")
            self.step = int(state["step"])
            self.seed = int(state.get("seed", self.config.seed))
            self.starts = [(int(s), float(v)) for s, v in state.get("starts", [])]
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise ckpt.CheckpointError(f"{path}: checkpoint does not fit this run ({exc})") from None

    def pairs_at(self, step: int) -> torch.Tensor:
        """The pair indices trained at ``step`` (``sampling.sampled_pairs``)."""
        return sampled_pairs(self.seed, step, self.n_pairs, self.batch, self.config.sampling)

    def losses(self, index: torch.Tensor, qat: bool) -> dict[str, torch.Tensor]:
        """The loss parts on pairs ``index`` (weights fake-quantised when ``qat``)."""
        weights = self.config.loss_weights()
        params = fake_quantized_params(self.net, self.specs) if qat else dict(self.net.named_parameters())
        idx = to_device(index, self.device)
        rendered = torch.func.functional_call(self.net, params, (self.maps_t[idx], self.poses_q[idx]))
        out = self.chain(rendered)
        seg_t, pose_t = self.target_tensors.batch(idx)
        rate = weights.rate > 0
        return score_loss(out.pose, out.seg_logits, pose_t, seg_t, weights=weights,
                          params=dict(self.net.named_parameters()) if rate else None,
                          specs=self.specs if rate else None, original_bytes=self.original_bytes,
                          pose_reference=self.pose_mse.value if self.config.pose_linear else None)

    def train_step(self) -> dict[str, float]:
        """One Adam step at ``self.step``; returns the loss parts as floats."""
        return {k: float(v) for k, v in self._step().items()}

    def _step(self) -> dict[str, torch.Tensor]:
        """One Adam step at ``self.step``; the loss parts stay tensors (on a GPU, reading them
        back would make every step wait for the last)."""
        qat, lr = self.config.phase_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        parts = self.losses(self.pairs_at(self.step), qat)
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        self.optimizer.step()
        self.pose_mse.update(parts["pose_mse"])
        self.step += 1
        return {k: v.detach() for k, v in parts.items()}

    def seg_disagreement(self, batch: int = 4) -> float:
        """SegNet's argmax disagreement with the targets over every pair, on the training chain (the
        network as the current phase sees it)."""
        qat = self.config.phase_at(max(self.step - 1, 0))[0]
        wrong = 0.0
        self.net.eval()
        with torch.no_grad():
            for start in range(0, self.n_pairs, batch):
                index = torch.arange(start, min(start + batch, self.n_pairs))
                wrong += float(self.losses(index, qat)["seg_disagreement"]) * len(index)
        return wrong / self.n_pairs

    def _train_until(self, end: int, out_dir: Path, bar, label: str | None = None) -> Path | None:
        """Steps up to ``end``, checkpointing into ``out_dir``; the last checkpoint written, if any."""
        phase_ends = {self.config.float_steps, self.config.total_steps}
        saved = None
        while self.step < end:
            qat = self.config.phase_at(self.step)[0]
            parts = self._step()
            if self.step % SHOW_EVERY == 0:
                bar.set_postfix(**({"start": label} if label else {}), phase="qat" if qat else "float",
                                loss=f"{float(parts['loss']):.4g}", seg=f"{float(parts['seg']):.3g}",
                                pose=f"{float(parts['pose']):.3g}", refresh=False)
            bar.update(1)
            if self.step in phase_ends or self.step % self.config.checkpoint_every == 0 or self.step == end:
                saved = ckpt.save_checkpoint(out_dir, self.step, self.state())
        return saved

    def _choose_start(self, bar) -> Path:
        """Train each start ``start_steps`` steps (each resumable in ``out_dir/starts/<j>``), go on from
        the one with the fewest seg errors, and checkpoint it as the run's own; returns that file."""
        config, steps = self.config, self.config.start_steps
        best, found = None, []
        for j in range(config.starts):
            seed, folder = config.seed * config.starts + j, self.out_dir / STARTS / str(j)
            self._begin(seed)
            last = ckpt.latest_checkpoint(folder)
            if last is not None:
                self.restore(last)
            bar.n = j * steps + self.step
            self._train_until(steps, folder, bar, label=f"{j + 1}/{config.starts}")
            seg = self.seg_disagreement()
            found.append((seed, seg))
            if best is None or seg < best[0]:
                best = (seg, copy.deepcopy(self.state()))
        self.restore_state(best[1])
        self.starts = found
        saved = ckpt.save_checkpoint(self.out_dir, self.step, self.state())
        shutil.rmtree(self.out_dir / STARTS, ignore_errors=True)
        return saved

    def run(self, *, resume: bool = False, stop_after: int | None = None) -> MaskWarpResult:
        """Train to the end (or until ``stop_after`` steps in all), checkpointing as it goes; with
        ``starts`` > 1, first the starts (all of them, whatever ``stop_after``), and on from the best."""
        last = ckpt.resume_point(self.out_dir, resume)
        if not resume and (self.out_dir / STARTS).exists():
            raise InputError(f"{self.out_dir} already holds an unfinished run's starts; pass --resume to "
                             "continue that run or choose a new output folder")
        if last is not None:
            self.restore(last)
            shutil.rmtree(self.out_dir / STARTS, ignore_errors=True)     # chosen before that checkpoint
        total, extra = self.config.total_steps, (self.config.starts - 1) * self.config.start_steps
        end = total if stop_after is None else min(total, stop_after)
        bar = progress(total=total + extra, desc=f"train mask_warp {self.config.name}", unit="step",
                       disable=not self.show_progress)
        saved = last if resume else None
        try:
            if self.config.starts > 1 and last is None:
                saved = self._choose_start(bar)
            bar.n = extra + self.step
            bar.refresh()
            saved = self._train_until(end, self.out_dir, bar) or saved
        finally:
            bar.close()
        if self.step < total:
            return MaskWarpResult(self.step, False, saved)
        model = MaskWarp(self.spec)
        model.load_state_dict({k: v.detach().cpu() for k, v in self.net.state_dict().items()})
        return MaskWarpResult(self.step, True, saved, model.eval(), self.poses.clone(), self.class_maps.copy(),
                              self.frames, self.seed, tuple(self.starts))


def train_mask_warp(config: MaskWarpConfig, video: Path | np.ndarray | None, scorers, out_dir: Path, *,
                    device: str = "cpu", resume: bool = False, stop_after: int | None = None,
                    targets: Targets | None = None, frames: int | None = None,
                    show_progress: bool = True) -> MaskWarpResult:
    """Train ``config`` on ``video`` (a path or uint8 frames) into ``out_dir`` (checkpoints); with
    ``targets`` (and the clip's ``frames``) already computed, the video is not read."""
    trainer = MaskWarpTrainer(config, video, scorers, out_dir, device=device, targets=targets, frames=frames,
                              show_progress=show_progress)
    return trainer.run(resume=resume, stop_after=stop_after)


WORK = Path("work") / "train-mask_warp"


def compress_mask_warp(video: Path, scorers, out: Path, config: MaskWarpConfig | str | Path = "demo", *,
                       device: str = "cpu", resume: bool = False, show_progress: bool = True) -> Path:
    """Train a ``mask_warp`` renderer on ``video``, export it and write the submission folder
    ``out`` (archive.zip, inflate.sh, runtime); training's checkpoints go to ``out/work/``.
    ``config`` is a ``MaskWarpConfig``, a preset name or a TOML path."""
    if not isinstance(config, MaskWarpConfig):
        config = load_config(config)
    video, out = Path(video), Path(out)
    if not video.is_file():
        raise InputError(f"{video}: video not found")
    result = train_mask_warp(config, video, scorers, out / WORK, device=device, resume=resume,
                             show_progress=show_progress)
    if not result.finished:
        raise InputError(f"training stopped at step {result.step}; rerun with resume to finish it")
    return export_submission(out, result.model, result.poses, result.class_maps, result.frames,
                             video_name=video.name, weights=config.weights)
