"""The main job's pipeline steps (``tac_core.pipeline``), one chain per method.

    hnerv_pair: targets -> train -> tto -> sidecar -> pose_field -> package -> evaluate
    mask_warp:  targets -> train -> lowbit -> maps (near-lossless) -> tto (poses) -> finetune (QAT)
                -> sidecar -> pose_field -> package -> evaluate
    x265 | av1: encode -> evaluate
    baseline:   encode (x265 baseline_fast) -> evaluate      (a run of its own, OUT/work/baseline)

Each step works in its own folder ``RUN/steps/<name>/`` and reads earlier steps' outputs through
``ctx.output``; a step's config holds everything that defines its output (the recipe's tables,
the scorers' weight hashes, the video's content through ``files``), so a rerun does only what
changed. ``package`` writes a complete submission folder; ``evaluate`` copies it, inflates it
through its own inflate.sh and scores it (``score.json``, ``report.txt``).
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tac_core import classical, contract, harness
from tac_core.errors import InputError
from tac_core.files import sha256_file, write_atomic
from tac_core.pipeline import Step, StepContext

SUBMISSION = "submission"
MODEL = "model.pt"
TARGETS = "targets.npz"
STEPS_VERSION = "1"            # bump when a step's code changes what it writes
RENDERERS = ("hnerv_pair", "mask_warp")


@dataclass(frozen=True)
class Job:
    """What every step of one ``tac compress`` run shares."""

    video: Path
    scorers: object                # tac_torch.scorers.TorchScorers
    device: str
    basis: str                     # the evaluation's rate basis: "videos" (the contest clip) or "contest-per-frame"
    command: str

    def scorer_config(self) -> dict:
        return {"kind": self.scorers.kind, "weights": dict(sorted(self.scorers.weights_sha256.items())),
                "device": self.device.split(":")[0]}

    def original_bytes(self, frames: int) -> float:
        """The rate's denominator for this video, as the evaluation will count it."""
        if self.basis == "videos":
            return float(self.video.stat().st_size)
        return contract.contest_equivalent_original_bytes(frames)


def _log(text: str) -> None:
    print(text, file=sys.stderr)


# --- shared steps ---------------------------------------------------------------

def score_submission(job: Job, source: Path, folder: Path) -> dict:
    """Copy the submission folder ``source`` to ``folder``, inflate it through its own inflate.sh,
    score it (``score.json``, ``report.txt`` inside) and return the score's parts and axis."""
    from tac_torch.evaluate import evaluate

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(contract.INFLATED_DIR, "report.txt", "score.json"))
    harness.run_inflate(folder, [job.video.name])
    names = folder.parent / f"{folder.name}.names.txt"
    write_atomic(names, job.video.name + "\n")
    try:
        result = evaluate(folder, job.video.parent, job.scorers, names_file=names, rate_basis=job.basis,
                          command=job.command)
    finally:
        names.unlink(missing_ok=True)
    shutil.rmtree(folder / contract.INFLATED_DIR, ignore_errors=True)    # frames: large, re-creatable
    c = result.components
    return {"score": c.score, "seg": c.seg, "pose": c.pose, "bytes": c.archive_bytes, "rate": c.rate,
            "axis": result.record.axis}


def evaluate_step(job: Job, source: str) -> Step:
    """Copy ``source``'s submission folder, inflate it with its own inflate.sh and score it."""
    def run(ctx: StepContext) -> dict:
        summary = score_submission(job, ctx.output(source) / SUBMISSION, ctx.dir / SUBMISSION)
        shutil.copyfile(ctx.dir / SUBMISSION / "score.json", ctx.dir / "score.json")
        return summary
    return Step("evaluate", run, {"scorers": job.scorer_config(), "basis": job.basis,
                                  "video": job.video.name}, version=STEPS_VERSION)


def classical_steps(job: Job, codec: classical.ClassicalCodec) -> list[Step]:
    """encode (a classical codec's submission folder) -> evaluate."""
    def encode(ctx: StepContext) -> dict:
        folder = ctx.dir / SUBMISSION
        shutil.rmtree(folder, ignore_errors=True)
        _log(f"compressing {job.video.name} with {codec.name} (CRF {codec.crf}, scale {codec.scale})")
        codec.compress(job.video, folder)
        return {"bytes": (folder / contract.ARCHIVE_NAME).stat().st_size}
    config = {"codec": codec.name, "crf": codec.crf, "scale": codec.scale}
    return [Step("encode", encode, config, files=[job.video], version=STEPS_VERSION), evaluate_step(job, "encode")]


# --- hnerv_pair -----------------------------------------------------------------

def _save_targets(path: Path, targets, frames: int) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, seg=targets.seg, pose=targets.pose, frames=np.int64(frames))
    write_atomic(path, buf.getvalue())


def load_targets(folder: Path):
    """The targets (and frame count) a ``targets`` step wrote."""
    from tac_torch.chain import Targets

    with np.load(folder / TARGETS) as z:
        return Targets(seg=z["seg"], pose=z["pose"]), int(z["frames"])


def targets_step(job: Job) -> Step:
    """The scorers' outputs on the original pairs: what every later step aims at."""
    def run(ctx: StepContext) -> dict:
        from tac_torch.chain import pair_targets
        from tac_torch.train import load_frames

        frames = load_frames(job.video)
        targets = pair_targets(frames, job.scorers)
        _save_targets(ctx.dir / TARGETS, targets, len(frames))
        return {"frames": len(frames), "pairs": len(targets)}
    return Step("targets", run, {"scorers": job.scorer_config()}, files=[job.video], version=STEPS_VERSION)


def measured(summary: dict) -> dict:
    """A step's summary without the values a switched-off step leaves unmeasured (NaN)."""
    return {k: v for k, v in summary.items() if not (isinstance(v, float) and math.isnan(v))}


def _tto_summary(name: str, res) -> dict:
    """A TTO result for the ledger, logged in one line."""
    if res.before is None:
        _log(f"{name}: disabled (0 epochs)")
        return {"epochs": 0, "changed_pairs": 0}
    _log(f"{name}: distortion score {res.before.score():.5f} -> {res.after.score():.5f} "
         f"({res.changed_pairs} pairs changed, {res.epochs} epochs)")
    return {"distortion_before": res.before.score(), "distortion_after": res.after.score(),
            "changed_pairs": res.changed_pairs, "epochs": res.epochs, "history": res.history}


def _bias_summary(enabled: bool, res) -> dict:
    """An output-bias search's result (``tac_torch.refine.SidecarResult``) for the ledger, logged in
    one line when the search ran."""
    if enabled:
        _log(f"sidecar: {'kept' if res.kept else 'dropped'}; score {res.score_before:.5f} -> "
             f"{res.score_after:.5f} ({res.pairs_with_bias} pairs with output biases)")
    return measured({"kept": res.kept, "score_before": res.score_before, "score_after": res.score_after,
                     "bytes_before": res.bytes_before, "bytes_after": res.bytes_after,
                     "pairs_with_bias": res.pairs_with_bias})


def _field_summary(enabled: bool, res) -> dict:
    """A pose-field result (``tac_torch.pose_field.PoseFieldResult``) for the ledger, logged in one
    line when the fit ran."""
    if enabled:
        _log(f"pose field: {'kept' if res.kept else 'dropped'}; pose {res.pose_before:.5f} -> {res.pose_after:.5f}, "
             f"{res.bytes_before:,} -> {res.bytes_after:,} bytes ({res.pairs_with_field} pairs with a field)")
    return measured(asdict(res))


def _save_model(path: Path, mf, note: dict) -> None:
    from tac_torch.export import save_model_file

    save_model_file(path, mf.model, mf.latents, mf.frames, extra={"refined": note}, output_bias=mf.output_bias,
                    pose_field=mf.pose_field)


def hnerv_steps(job: Job, recipe) -> list[Step]:
    """targets -> train -> tto -> sidecar -> pose_field -> package -> evaluate for the ``hnerv_pair`` renderer."""
    from tac_torch.export import load_model_file

    def train(ctx: StepContext) -> dict:
        from tac_torch.train import train as run_training

        _log(f"training {recipe.name} ({recipe.total_steps} steps) on {job.video.name} -> {ctx.dir}")
        result = run_training(recipe, job.video, job.scorers, ctx.dir, device=job.device, resume=ctx.resuming)
        if not result.finished or result.model_path is None:
            raise InputError(f"training stopped at step {result.step}; rerun the same command to finish it")
        return {"chosen": result.chosen, "candidate_scores": result.scores, "steps": result.step}

    def tto(ctx: StepContext) -> dict:
        from tac_torch.refine import tto_latents

        mf = load_model_file(ctx.output("train") / MODEL)
        targets, _ = load_targets(ctx.output("targets"))
        new, res = tto_latents(mf, targets, job.scorers, recipe.tto.settings(recipe.seed), camera=recipe.camera,
                               device=job.device)
        summary = _tto_summary("tto latents", res)
        _save_model(ctx.dir / MODEL, new, summary)
        return summary

    def sidecar(ctx: StepContext) -> dict:
        from tac_torch.refine import search_output_bias

        mf = load_model_file(ctx.output("tto") / MODEL)
        targets, frames = load_targets(ctx.output("targets"))
        new, res = search_output_bias(mf, targets, job.scorers, recipe.sidecar.settings(recipe.seed),
                                      original_bytes=job.original_bytes(frames), camera=recipe.camera,
                                      device=job.device)
        summary = _bias_summary(recipe.sidecar.enabled, res)
        _save_model(ctx.dir / MODEL, new, summary)
        return summary

    def pose_field(ctx: StepContext) -> dict:
        from tac_torch.refine import fit_field

        mf = load_model_file(ctx.output("sidecar") / MODEL)
        targets, frames = load_targets(ctx.output("targets"))
        new, res = fit_field(mf, targets, job.scorers, recipe.pose_field, original_bytes=job.original_bytes(frames),
                             camera=recipe.camera, device=job.device)
        summary = _field_summary(recipe.pose_field.enabled, res)
        _save_model(ctx.dir / MODEL, new, summary)
        return summary

    def package(ctx: StepContext) -> dict:
        from tac_torch.export import export_submission

        mf = load_model_file(ctx.output("pose_field") / MODEL)
        folder = export_submission(ctx.dir / SUBMISSION, mf.model, mf.latents, mf.frames,
                                   video_name=job.video.name, output_bias=mf.output_bias, pose_field=mf.pose_field)
        archive = folder / contract.ARCHIVE_NAME
        return {"bytes": archive.stat().st_size, "sha256": sha256_file(archive)}

    return [targets_step(job),
            Step("train", train, {"recipe": recipe.as_dict()}, version=STEPS_VERSION),
            Step("tto", tto, {"tto": asdict(recipe.tto), "seed": recipe.seed, "camera": list(recipe.camera)},
                 version=STEPS_VERSION),
            Step("sidecar", sidecar, {"sidecar": asdict(recipe.sidecar), "seed": recipe.seed, "basis": job.basis},
                 version=STEPS_VERSION),
            Step("pose_field", pose_field, {"pose_field": asdict(recipe.pose_field), "seed": recipe.seed,
                                            "basis": job.basis}, version=STEPS_VERSION),
            Step("package", package, {"video": job.video.name}, version=STEPS_VERSION),
            evaluate_step(job, "package")]


# --- mask_warp ------------------------------------------------------------------

def mask_warp_steps(job: Job, config) -> list[Step]:
    """targets -> train -> lowbit -> maps -> tto -> finetune -> sidecar -> pose_field -> package -> evaluate
    (``mask_warp``)."""
    from tac_torch import mask_warp_refine as mw

    def targets(ctx: StepContext):
        return load_targets(ctx.output("targets"))[0]

    def train(ctx: StepContext) -> dict:
        from tac_torch.mask_warp_train import train_mask_warp

        starts = f"; {config.starts} starts of {config.start_steps} first" if config.starts > 1 else ""
        _log(f"training mask_warp {config.name} ({config.total_steps} steps{starts}) on {job.video.name} -> {ctx.dir}")
        t, frames = load_targets(ctx.output("targets"))       # the video is not decoded again
        result = train_mask_warp(config, None, job.scorers, ctx.dir, device=job.device, resume=ctx.resuming,
                                 targets=t, frames=frames)
        m = mw.from_training(result)
        mw.save_model(ctx.dir / MODEL, replace(m, weights=config.weights))
        summary = {"steps": result.step, "archive_bytes": replace(m, weights=config.weights).archive_bytes()}
        if result.starts:
            _log(f"train: {len(result.starts)} starts, seg disagreement after {config.start_steps} steps: "
                 + ", ".join(f"{seg:.5f} (seed {seed})" for seed, seg in result.starts)
                 + f"; went on with seed {result.seed}")
            summary.update(seed=result.seed, starts=[list(s) for s in result.starts])
        return summary

    def lowbit(ctx: StepContext) -> dict:
        m = mw.lowbit(mw.load_model(ctx.output("train") / MODEL))
        mw.save_model(ctx.dir / MODEL, m)       # its exact score is the maps step's (or TTO's) starting point
        return {"archive_bytes": m.archive_bytes()}

    def maps(ctx: StepContext) -> dict:
        m = mw.load_model(ctx.output("lowbit") / MODEL)
        t, frames = load_targets(ctx.output("targets"))
        leads = None
        if config.maps.steer_rounds and config.maps.steer_margin_floor:
            from tac_torch.chain import as_pairs
            from tac_torch.train import load_frames

            leads = job.scorers.seg_leads(as_pairs(load_frames(job.video)))[:len(t.seg)]
        new, res = mw.edit_maps(m, t, job.scorers, config.maps, original_bytes=job.original_bytes(frames),
                                original_leads=leads, camera=config.camera, device=job.device)
        mw.save_model(ctx.dir / MODEL, new)
        if config.maps.enabled:
            steered = "" if res.steer is None else (f"; steering {res.steer.errors_before:.5f} -> "
                                                    f"{res.steer.errors_after:.5f} seg (linear path)")
            _log(f"maps: {'kept' if res.kept else 'dropped'} edited maps ({res.flipped} pixels changed{steered}); "
                 f"score {res.score_before:.5f} -> {res.score_after:.5f}, "
                 f"{res.bytes_before:,} -> {res.bytes_after:,} bytes")
        return {"kept": res.kept, "flipped": res.flipped, "bytes_before": res.bytes_before,
                "bytes_after": res.bytes_after, **measured({"score_before": res.score_before,
                                                            "score_after": res.score_after})}

    def tto(ctx: StepContext) -> dict:
        m = mw.load_model(ctx.output("maps") / MODEL)
        new, res = mw.tto_poses(m, targets(ctx), job.scorers, config.tto.settings(config.seed),
                                camera=config.camera, device=job.device)
        mw.save_model(ctx.dir / MODEL, new)
        return _tto_summary("tto poses", res)

    def finetune(ctx: StepContext) -> dict:
        m = mw.load_model(ctx.output("tto") / MODEL)
        ft = config.finetune
        new, res = mw.finetune(m, targets(ctx), job.scorers, steps=ft.qat_steps, lr=ft.lr, seed=config.seed,
                               pose_weight=ft.pose, judge=ft.judge, check_every=ft.check_every,
                               camera=config.camera, device=job.device)
        mw.save_model(ctx.dir / MODEL, new)
        if not ft.qat_steps:
            return {"kept": False, "steps": 0}
        terms = "distortion score" if ft.judge == "score" else f"{ft.judge} term"
        _log(f"finetune: {'kept' if res.kept else 'dropped'} after {res.steps} steps; {terms} {res.before:.5f} -> "
             f"{res.after:.5f} (last check {res.tried:.5f})")
        return {"kept": res.kept, "judge": ft.judge, "judged_before": res.before, "judged_after": res.after,
                "judged_tried": res.tried, "steps": res.steps}

    def sidecar(ctx: StepContext) -> dict:
        m = mw.load_model(ctx.output("finetune") / MODEL)
        t, frames = load_targets(ctx.output("targets"))
        new, res = mw.search_output_bias(m, t, job.scorers, config.sidecar.settings(config.seed),
                                         original_bytes=job.original_bytes(frames), camera=config.camera,
                                         device=job.device)
        mw.save_model(ctx.dir / MODEL, new)
        return _bias_summary(config.sidecar.enabled, res)

    def pose_field(ctx: StepContext) -> dict:
        m = mw.load_model(ctx.output("sidecar") / MODEL)
        t, frames = load_targets(ctx.output("targets"))
        new, res = mw.fit_field(m, t, job.scorers, config.pose_field, original_bytes=job.original_bytes(frames),
                                camera=config.camera, device=job.device)
        mw.save_model(ctx.dir / MODEL, new)
        return _field_summary(config.pose_field.enabled, res)

    def package(ctx: StepContext) -> dict:
        from tac_core.export import write_submission
        from tac_torch.export import member_name

        m = mw.load_model(ctx.output("pose_field") / MODEL)
        folder = write_submission(ctx.dir / SUBMISSION, member_name(job.video.name), m.archive())
        archive = folder / contract.ARCHIVE_NAME
        return {"bytes": archive.stat().st_size, "sha256": sha256_file(archive)}

    after = {"seed": config.seed, "camera": list(config.camera)}
    return [targets_step(job),
            Step("train", train, {"config": config.as_dict()}, version=STEPS_VERSION),
            Step("lowbit", lowbit, {"weights": config.weights}, version=STEPS_VERSION),
            Step("maps", maps, {"maps": asdict(config.maps), "basis": job.basis, **after}, version=STEPS_VERSION),
            Step("tto", tto, {"tto": asdict(config.tto), **after}, version=STEPS_VERSION),
            Step("finetune", finetune, {"finetune": asdict(config.finetune), **after}, version=STEPS_VERSION),
            Step("sidecar", sidecar, {"sidecar": asdict(config.sidecar), "basis": job.basis, **after},
                 version=STEPS_VERSION),
            Step("pose_field", pose_field, {"pose_field": asdict(config.pose_field), "basis": job.basis, **after},
                 version=STEPS_VERSION),
            Step("package", package, {"video": job.video.name}, version=STEPS_VERSION),
            evaluate_step(job, "package")]


def renderer_steps(job: Job, renderer: str, preset: str, steps: int | None = None) -> tuple[list[Step], str]:
    """A learned renderer's chain with ``preset`` (a name or a TOML file; training scaled to
    ``steps`` when given) and the run's name, e.g. ``mask_warp demo``."""
    if renderer == "hnerv_pair":
        from tac_torch.recipe import load_recipe

        recipe = load_recipe(preset)
        recipe = recipe if steps is None else recipe.with_total_steps(steps)
        return hnerv_steps(job, recipe), f"hnerv_pair {recipe.name}"
    if renderer == "mask_warp":
        from tac_torch.mask_warp_train import load_config

        config = load_config(preset)
        config = config if steps is None else config.with_total_steps(steps)
        return mask_warp_steps(job, config), f"mask_warp {config.name}"
    raise InputError(f"unknown renderer {renderer!r}; tac has hnerv_pair and mask_warp")


def publish(evaluated: Path, out: Path) -> None:
    """Copy the evaluated submission folder (without its inflated frames) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(evaluated / SUBMISSION, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(contract.INFLATED_DIR))
