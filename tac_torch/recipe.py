"""Training recipes: a renderer spec, sampling settings and a list of stages, read from TOML.

    [recipe]  name, seed, batch_pairs, sampling, checkpoint_every, camera_h/camera_w, camera_path,
              latent_scale
    [spec]    overrides of the hnerv_pair default spec (tac_torch.renderers.make_spec)
    [[stage]] name, steps, learning rates, weight decay, qat, ema_decay, loss weights, schedule
    [tto]     after training: test-time optimisation of the latents (enabled, max_epochs, min_gain,
              lr, batch_pairs, inner_steps)
    [sidecar] then the output-bias sidecar search, same keys
    [pose_field] then the pose-field sidecar (tac_torch.pose_field.FieldSettings: enabled,
              iterations, lr, batch_pairs, converged, passes, refit_iterations, refit_lr, beta2)

A file may start with ``base = "contest"`` (a preset or another file) and give only what it changes.
Every key is checked when the recipe is built: an unknown key, a wrong type
or a value out of range is an ``InputError`` naming the key and the file. A
recipe's fingerprint (sha256 of its canonical JSON, training tables only) is
stored in checkpoints so a run is never resumed under another recipe; the tables after training
(``AFTER_TRAINING``) are not part of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from tac_core import contract
from tac_core.errors import InputError
from tac_torch.chain import PATHS
from tac_torch.losses import LossWeights
from tac_torch.pose_field import FieldSettings
from tac_torch.renderers import make_spec
from tac_torch.sampling import SAMPLINGS

PRESETS = ("demo", "contest")
SCHEDULES = ("constant", "cosine")
AFTER_TRAINING = ("tto", "sidecar", "pose_field")   # tables outside the training fingerprint
NAMED_TABLES = ("recipe", "train")                  # the tables whose ``name`` labels a run


@dataclass(frozen=True)
class Stage:
    """One phase of training: its length, learning rates, QAT switch, EMA and loss weights."""

    name: str
    steps: int
    lr_decoder: float = 1e-3          # AdamW: biases, snake alphas, stem and head
    lr_muon: float = 0.02             # Muon: hidden convolution weights
    lr_latents: float = 1e-2          # AdamW: the per-pair latents
    weight_decay: float = 0.0
    qat: bool = False                 # run the decoder on int8 fake-quantised weights and latents
    ema_decay: float = 0.99
    warmup: int = 0                   # steps of linear learning-rate warm-up at the stage's start
    schedule: str = "constant"        # "constant" or "cosine" (decays to lr_floor x lr)
    lr_floor: float = 0.1
    seg: float = contract.SEG_WEIGHT
    pose: float = 1.0
    pose_linear: bool = False         # the pose sqrt linearised at a running mean of the MSE (losses.pose_term);
                                      # off: on the 90-step demo it scored 6.76 against 6.64 without (proxy)
    rate: float = contract.RATE_WEIGHT
    margin: float = 2.0
    temperature: float = 0.5
    boost: float = 3.0
    pixel: float = 0.0                # mean squared pixel error against the clip at the renderer's size
                                      # (/255^2): a cheap warm-up; with seg = pose = 0 no scorer runs

    def loss_weights(self) -> LossWeights:
        return LossWeights(seg=self.seg, pose=self.pose, rate=self.rate, margin=self.margin,
                           temperature=self.temperature, boost=self.boost)

    def lr_factor(self, step_in_stage: int) -> float:
        """The multiplier of every learning rate at ``step_in_stage`` (0-based)."""
        if self.warmup and step_in_stage < self.warmup:
            return (step_in_stage + 1) / self.warmup
        if self.schedule == "constant":
            return 1.0
        span = max(1, self.steps - self.warmup)
        t = min(1.0, (step_in_stage - self.warmup) / span)
        return self.lr_floor + (1 - self.lr_floor) * 0.5 * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Refine:
    """A test-time optimisation after training (``[tto]``: the latents; ``[sidecar]``: the output
    biases): epochs over the clip's pairs, stopping early once an epoch gains under ``min_gain``."""

    enabled: bool = True
    max_epochs: int = 2
    min_gain: float = 1e-4
    lr: float = 1.0                   # Adam step in code units
    batch_pairs: int = 4
    inner_steps: int = 3              # Adam steps per batch of pairs in each epoch

    def settings(self, seed: int = 0):
        """The ``tac_torch.tto.TTOSettings`` of this table (0 epochs when disabled)."""
        from tac_torch.tto import TTOSettings

        return TTOSettings(max_epochs=self.max_epochs if self.enabled else 0, min_gain=self.min_gain,
                           lr=self.lr, batch_pairs=self.batch_pairs, inner_steps=self.inner_steps, seed=seed)


@dataclass(frozen=True)
class Recipe:
    """A whole training run. ``spec`` holds overrides of the default hnerv_pair spec."""

    name: str
    stages: tuple[Stage, ...]
    spec: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0
    batch_pairs: int = 4
    sampling: str = "random"          # how steps draw their pairs: "random" or "epochs" (sampling.SAMPLINGS)
    checkpoint_every: int = 100
    camera_h: int = contract.CAMERA_HW[0]
    camera_w: int = contract.CAMERA_HW[1]
    camera_path: str = "exact"        # the chain's camera round trip: "exact" or "linear" (chain.PATHS)
    latent_scale: float = 0.1
    tto: Refine = field(default_factory=Refine)
    sidecar: Refine = field(default_factory=Refine)
    pose_field: FieldSettings = field(default_factory=FieldSettings)   # [pose_field]: the pose-field sidecar
    source: str = "<recipe>"          # where it was read from (not part of the fingerprint)

    def __post_init__(self):
        check_fields(self, "recipe", self.source, skip=("stages", "spec", "source", *AFTER_TRAINING))
        for table in AFTER_TRAINING:
            check_fields(getattr(self, table), f"[{table}]", self.source)
        if not self.stages:
            raise InputError(f"{self.source}: a recipe needs at least one [[stage]]")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise InputError(f"{self.source}: stage names must be unique, got {names}")
        for s in self.stages:
            check_fields(s, f"stage {s.name!r}", self.source)
        check_spec(self, make_spec)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def camera(self) -> tuple[int, int]:
        return (self.camera_h, self.camera_w)

    def renderer_spec(self) -> dict[str, int]:
        return make_spec(**self.spec)

    def stage_at(self, step: int) -> tuple[int, Stage, int]:
        """(stage index, stage, step within the stage) of global ``step`` (0-based)."""
        start = 0
        for i, s in enumerate(self.stages):
            if step < start + s.steps:
                return i, s, step - start
            start += s.steps
        raise InputError(f"step {step} is past the recipe's {self.total_steps} steps")

    def stage_ends(self) -> list[int]:
        """The global step count at the end of each stage."""
        ends, total = [], 0
        for s in self.stages:
            total += s.steps
            ends.append(total)
        return ends

    def with_total_steps(self, total: int) -> "Recipe":
        """The same recipe with its stages' steps scaled to ``total`` in all (each stage keeps at
        least one step): for quick runs and tests of a full preset."""
        if total < len(self.stages):
            raise InputError(f"{self.source}: {len(self.stages)} stages need at least {len(self.stages)} "
                             f"steps, got {total}")
        shares = [s.steps * total / self.total_steps for s in self.stages]
        steps = [max(1, int(x)) for x in shares]
        steps[-1] += total - sum(steps)
        if steps[-1] < 1:
            raise InputError(f"{self.source}: cannot spread {total} steps over its stages")
        return replace(self, stages=tuple(replace(s, steps=n) for s, n in zip(self.stages, steps)))

    def as_dict(self) -> dict[str, Any]:
        """The training part of the recipe (what checkpoints must match): no ``[tto]``, ``[sidecar]``
        or ``[pose_field]``."""
        d = training_fields(self, AFTER_TRAINING)
        d["stages"] = [asdict(s) for s in self.stages]
        return d

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of ``as_dict`` (training only; refinement settings excluded)."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_CHOICES = {"schedule": SCHEDULES, "camera_path": PATHS, "sampling": SAMPLINGS}   # name: the values it may take
_RANGES = {  # name: (low, high, low inclusive)
    "steps": (1, None, True), "batch_pairs": (1, None, True), "checkpoint_every": (1, None, True),
    "camera_h": (2, None, True), "camera_w": (2, None, True), "seed": (0, None, True),
    "lr_decoder": (0, None, True), "lr_muon": (0, None, True), "lr_latents": (0, None, True),
    "weight_decay": (0, None, True), "ema_decay": (0, 1, True), "warmup": (0, None, True),
    "lr_floor": (0, 1, True), "latent_scale": (0, None, False), "seg": (0, None, True),
    "pose": (0, None, True), "rate": (0, None, True), "margin": (0, None, True),
    "temperature": (0, None, False), "boost": (0, None, True), "pixel": (0, None, True),
    "max_epochs": (0, None, True), "min_gain": (0, None, True), "lr": (0, None, False),
    "inner_steps": (1, None, True), "starts": (1, None, True), "start_steps": (0, None, True),
}


# Keys added after runs had been fingerprinted, with the behaviour those runs had: left out of a
# fingerprint when they hold it, so those runs' checkpoints and cached steps still match.
_LATER_KEYS = {"camera_path": "exact", "sampling": "random", "starts": 1, "start_steps": 0}


def training_fields(config, after_training: tuple[str, ...]) -> dict[str, Any]:
    """A training config's fields as a dict, without ``source``, the tables ``after_training``
    and later keys at their old behaviour (``_LATER_KEYS``): what checkpoints must match."""
    d = asdict(config)
    for key in ("source", *after_training):
        d.pop(key)
    for key, old in _LATER_KEYS.items():
        if key in d and d[key] == old:
            d.pop(key)
    return d


def check_spec(config, make) -> None:
    """Freeze ``config.spec`` as a plain dict and build it with ``make`` (a renderer's ``make_spec``):
    ``InputError`` naming ``config.source`` when the overrides do not make a spec."""
    try:
        object.__setattr__(config, "spec", dict(config.spec))
        make(**config.spec)
    except (InputError, TypeError) as exc:
        raise InputError(f"{config.source}: [spec]: {exc}") from None


def check_fields(obj, where: str, source: str, skip: tuple[str, ...] = ()) -> None:
    for f in fields(obj):
        if f.name in skip:
            continue
        value, kind = getattr(obj, f.name), f.type
        ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
        if not ok:
            raise InputError(f"{source}: {where} key {f.name!r} must be {kind}, got {value!r}")
        if kind == "float":
            object.__setattr__(obj, f.name, float(value))
            if not math.isfinite(value):
                raise InputError(f"{source}: {where} key {f.name!r} must be finite, got {value!r}")
        if f.name in _RANGES:
            lo, hi, inclusive = _RANGES[f.name]
            if (value < lo if inclusive else value <= lo) or (hi is not None and value > hi):
                bound = f"{'>=' if inclusive else '>'} {lo}" + (f" and <= {hi}" if hi is not None else "")
                raise InputError(f"{source}: {where} key {f.name!r} must be {bound}, got {value!r}")
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise InputError(f"{source}: {where} key {f.name!r} must be one of {', '.join(_CHOICES[f.name])}, "
                             f"got {value!r}")


def known_keys(table: Mapping[str, Any], cls, where: str, source: str, extra: tuple[str, ...] = (),
           exclude: tuple[str, ...] = AFTER_TRAINING) -> dict:
    if not isinstance(table, Mapping):
        raise InputError(f"{source}: {where} must be a table")
    allowed = {f.name for f in fields(cls)} - {"stages", "spec", "source", *exclude} | set(extra)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r} in {where} "
                         f"(known: {', '.join(sorted(allowed))})")
    return dict(table)


def recipe_from_dict(data: Mapping[str, Any], source: str = "<recipe>") -> Recipe:
    """A ``Recipe`` from parsed TOML (tables ``recipe``, ``spec`` and the array ``stage``)."""
    unknown = sorted(set(data) - {"recipe", "spec", "stage", *AFTER_TRAINING})
    if unknown:
        raise InputError(f"{source}: unknown table {unknown[0]!r} (known: recipe, spec, stage, "
                         f"{', '.join(AFTER_TRAINING)})")
    head = known_keys(data.get("recipe", {}), Recipe, "[recipe]", source)
    if "name" not in head:
        head["name"] = Path(source).stem
    stages = data.get("stage", [])
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise InputError(f"{source}: stages are written as [[stage]] tables")
    built = []
    for i, table in enumerate(stages):
        table = known_keys(table, Stage, f"[[stage]] #{i + 1}", source)
        for key in ("name", "steps"):
            if key not in table:
                raise InputError(f"{source}: [[stage]] #{i + 1} needs the key {key!r}")
        try:
            built.append(Stage(**table))
        except TypeError as exc:
            raise InputError(f"{source}: [[stage]] #{i + 1}: {exc}") from None
    spec = data.get("spec", {})
    if not isinstance(spec, dict):
        raise InputError(f"{source}: [spec] must be a table of integers")
    refine = {}
    for table, cls in (("tto", Refine), ("sidecar", Refine), ("pose_field", FieldSettings)):
        if table in data:
            if not isinstance(data[table], dict):
                raise InputError(f"{source}: [{table}] must be a table")
            keys = known_keys(data[table], cls, f"[{table}]", source)
            try:
                refine[table] = cls(**keys)
            except InputError as exc:                   # FieldSettings checks its own values
                raise InputError(f"{source}: {exc}") from None
    return Recipe(stages=tuple(built), spec=spec, source=source, **head, **refine)


def read_toml(preset_or_path: str | Path, presets: dict[str, str], what: str) -> tuple[dict, str]:
    """Parsed TOML of a preset (``presets``: name -> file under tac_torch/presets/) or of a file path,
    and where it came from; ``InputError`` when it is missing or not TOML.

    A top-level ``base = "NAME"`` (a preset, or a TOML path relative to the file naming it) makes the
    file a list of changes to that recipe: its tables are merged into the base's key by key (a table
    it names replaces only the keys it gives; any other value, ``[[stage]]`` lists included, replaces
    the base's) and named after its own file unless it gives a ``name``. Bases may have bases."""
    return _read_with_bases(str(preset_or_path), presets, what, (), None, "")


def _read_with_bases(name: str, presets: dict[str, str], what: str, chain: tuple[str, ...],
                     relative_to: Path | None, named_by: str) -> tuple[dict, str]:
    if name in presets:
        key = f"preset {Path(presets[name]).stem}"
        text = resources.files("tac_torch").joinpath("presets", presets[name]).read_text()
        source, here = key, None
    else:
        path = Path(name)
        if relative_to is not None and not path.is_absolute():
            path = relative_to / path
        if not path.is_file():
            by = f"{named_by}: its base " if named_by else ""
            raise InputError(f"{by}{path}: {what} not found (or use a preset: {', '.join(sorted(set(presets)))})")
        key = str(path.resolve())
        text, source, here = path.read_text(), str(path), path.parent
    if key in chain:
        raise InputError(f"{source}: its bases form a loop ({' -> '.join(chain + (key,))})")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML ({exc})") from None
    base = data.pop("base", None)
    if base is None:
        return data, source
    if not isinstance(base, str) or not base:
        raise InputError(f"{source}: base must be a preset name or a TOML path, got {base!r}")
    parent, _ = _read_with_bases(base, presets, what, chain + (key,), here, source)
    for table in NAMED_TABLES:   # a recipe made from a base is named after its own file unless it says
        own = data.get(table)
        if isinstance(parent.get(table), dict) and not (isinstance(own, dict) and "name" in own):
            parent[table] = {k: v for k, v in parent[table].items() if k != "name"}
    return _merged(parent, data), source


def _merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied: tables merged key by key, any other value replaced."""
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_recipe(preset_or_path: str | Path) -> Recipe:
    """A recipe from a preset name (``demo``, ``contest``) or a TOML file path."""
    data, source = read_toml(preset_or_path, {name: f"{name}.toml" for name in PRESETS}, "recipe file")
    return recipe_from_dict(data, source)
