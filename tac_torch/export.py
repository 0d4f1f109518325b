"""A trained ``hnerv_pair`` model -> a contest archive -> a submission folder.

    MODEL.pt (save_model_file / load_model_file)
      --archive_tensors: decoder weights int8 per output channel, vectors int8 per tensor,
                         latents int8 per latent dimension--> quantised tensors
      --build_archive: contest-safe entropy stages, architecture id 1 = spec + frame count--> bytes
      --export_submission: archive.zip (member "<stem>.tac") + inflate.sh + runtime--> folder

The model file is what training writes and ``tac export`` reads: a ``torch.save``
dict (loadable with ``weights_only=True``) with the keys

    spec     dict[str, int]   the hnerv_pair spec (tac_torch.renderers)
    decoder  state dict       HnervPair(spec).state_dict(), float tensors
    latents  tensor           (P, latent_dim) float, P = ceil(frames / 2)
    frames   int              the video's frame count N (odd N: the last pair renders one frame)

and, after the sidecar searches, optionally

    output_bias  tensor       (P, 2, 3) int8 codes of the output-bias sidecar
    pose_field   tensor       (P, 3, 3, 4) int8 codes of the pose-field sidecar

Other keys (optimiser state, history) are allowed and ignored. The archive is
read back by ``tac_torch.archive_io.read_model``, which the submission carries.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, NamedTuple

import torch

from tac_core.architectures import output_bias as bias_sidecar
from tac_core.architectures import pose_field as field_sidecar
from tac_core.architectures.layout import sidecar_tensors
from tac_core.archive import ChooserOptions, QuantSpec, Quantized, quantize, write_archive
from tac_core.errors import InputError, WeightsError
from tac_core.files import atomic_output
from tac_torch import renderers
from tac_torch.archive_io import pairs_for, read_model  # noqa: F401  (re-exported)
from tac_torch.quant import weight_specs

MEMBER_SUFFIX = ".tac"
MODEL_KEYS = ("spec", "decoder", "latents", "frames")
BIAS_KEY = "output_bias"         # optional: the output-bias sidecar's codes (P, 2, 3) int8
FIELD_KEY = "pose_field"         # optional: the pose-field sidecar's codes (P, 3, 3, 4) int8
SIDECARS = ((BIAS_KEY, bias_sidecar), (FIELD_KEY, field_sidecar))

# Latents: int8 with one scale per latent dimension (axis 1). Trained latent dimensions have
# different ranges; a per-tensor scale would waste most codes of the narrow ones, so matching
# this error per tensor takes more bits per code, while the per-dimension scales cost
# 2 bytes each (56 bytes for the default 28 dimensions). Training's fake quantisation of the
# latents uses this spec too, so the archive holds exactly what was optimised.
LATENT_SPEC = QuantSpec("int8_sym", axis=1)


class ModelFile(NamedTuple):
    """What a model file holds: the decoder, its latents, the video's frame count and, after the
    sidecar searches, the output-bias codes ``(P, 2, 3)`` and the pose-field codes ``(P, 3, 3, 4)``."""

    model: renderers.HnervPair
    latents: torch.Tensor
    frames: int
    output_bias: torch.Tensor | None = None
    pose_field: torch.Tensor | None = None

    def archive(self, options: ChooserOptions | None = None) -> bytes:
        """The archive an export of this model writes (``build_archive``, with its sidecars)."""
        return build_archive(self.model, self.latents, self.frames, options, output_bias=self.output_bias,
                             pose_field=self.pose_field)


def member_name(video_name: str) -> str:
    """The archive member of a video: ``0.mkv`` -> ``0.tac`` (the inflate writes ``0.raw``)."""
    stem = Path(video_name).stem
    if not stem or Path(video_name).name != video_name:
        raise InputError(f"a video name is a file name like 0.mkv, got {video_name!r}")
    return stem + MEMBER_SUFFIX


def _check(model: renderers.HnervPair, latents: torch.Tensor, frames: int) -> None:
    if not isinstance(model, renderers.HnervPair):
        raise InputError(f"expected an HnervPair decoder, got {type(model).__name__}")
    if not isinstance(latents, torch.Tensor) or latents.dim() != 2 or latents.shape[1] != model.latent_dim:
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise InputError(f"latents must be a tensor (P, {model.latent_dim}), got {shape}")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise InputError(f"the frame count must be a positive integer, got {frames!r}")
    if pairs_for(frames) != latents.shape[0]:
        raise InputError(f"{frames} frames need {pairs_for(frames)} latents (one per pair), got {latents.shape[0]}")
    if not bool(torch.isfinite(latents).all()):
        raise InputError("latents hold NaN or infinite values")


def archive_specs(model: torch.nn.Module) -> dict[str, QuantSpec]:
    """The quantizer of every tensor the archive stores (training's QAT uses the same): the
    decoder's by ``weight_specs`` (int8 per output channel; vectors per tensor), latents by ``LATENT_SPEC``."""
    return {**weight_specs(model, "int8_sym"), renderers.LATENTS: LATENT_SPEC}


def archive_tensors(model: renderers.HnervPair, latents: torch.Tensor,
                    bias: torch.Tensor | None = None, field: torch.Tensor | None = None) -> dict[str, Quantized]:
    """The quantised tensors of an archive, by ``archive_specs``; the sidecars' codes (output bias,
    pose field), each when given and not all zero, stored raw as int8."""
    specs = archive_specs(model)
    arrays = model.arrays()
    missing = sorted(set(arrays) - set(specs))
    if missing:
        raise WeightsError(f"decoder tensors without a quantizer: {', '.join(missing[:4])}")
    out = {name: quantize(arrays[name], specs[name]) for name in arrays}
    out[renderers.LATENTS] = quantize(latents.detach().cpu().float().numpy(), specs[renderers.LATENTS])
    out.update(sidecar_tensors(len(latents), *(None if c is None else c.detach().cpu().numpy() for c in (bias, field))))
    return out


def build_archive(model: renderers.HnervPair, latents: torch.Tensor, frames: int,
                  options: ChooserOptions | None = None, output_bias: torch.Tensor | None = None,
                  pose_field: torch.Tensor | None = None) -> bytes:
    """A contest-safe archive of the model for a video of ``frames`` frames (with each sidecar,
    ``output_bias`` and ``pose_field``, that has a non-zero code)."""
    _check(model, latents, frames)
    tensors = archive_tensors(model, latents, output_bias, pose_field)
    schema = renderers.archive_schema(model.spec)
    return write_archive(tensors,
                         architecture=renderers.architecture(model.spec, frames),
                         schema=schema,
                         options=options or ChooserOptions(contest_safe=True))


def export_submission(out_dir: Path, model: renderers.HnervPair, latents: torch.Tensor, frames: int,
                      video_name: str = "0.mkv", output_bias: torch.Tensor | None = None,
                      pose_field: torch.Tensor | None = None) -> Path:
    """Write a submission folder whose inflate writes ``<stem of video_name>.raw`` with ``frames`` frames."""
    from tac_core.export import write_submission

    member = member_name(video_name)
    data = build_archive(model, latents, frames, output_bias=output_bias,   # checked before anything is written
                         pose_field=pose_field)
    return write_submission(Path(out_dir), member, data)


# --- the model file -------------------------------------------------------------

def save_model_file(path: Path, model: renderers.HnervPair, latents: torch.Tensor, frames: int,
                    extra: Mapping[str, object] | None = None, output_bias: torch.Tensor | None = None,
                    pose_field: torch.Tensor | None = None) -> Path:
    """Write a model file atomically (a failed write leaves no file); ``extra`` adds keys."""
    _check(model, latents, frames)
    sidecars = {key: torch.from_numpy(sidecar.check_codes(codes.detach().cpu().numpy(), len(latents)))
                for (key, sidecar), codes in zip(SIDECARS, (output_bias, pose_field)) if codes is not None}
    clash = sorted(set(extra or {}) & {*MODEL_KEYS, *(key for key, _ in SIDECARS)})
    if clash:
        raise InputError(f"extra keys may not replace the model's own: {', '.join(clash)}")
    payload = {**(extra or {}), "spec": dict(model.spec),
               "decoder": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "latents": latents.detach().cpu().float(), "frames": int(frames), **sidecars}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    with atomic_output(path) as f:
        f.write(buf.getvalue())
    return path


def load_model_file(path: Path) -> ModelFile:
    """Read a model file; ``InputError`` (one sentence) when it is missing, corrupt or incomplete."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no model file there (train one first; it is what training writes)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise InputError(f"{path}: not a readable model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: a model file holds a dict, got {type(payload).__name__}")
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise InputError(f"{path}: model file lacks {', '.join(missing)}")
    spec, decoder, latents, frames = (payload[k] for k in MODEL_KEYS)
    if not isinstance(decoder, Mapping) or not all(isinstance(v, torch.Tensor) for v in decoder.values()):
        raise InputError(f"{path}: 'decoder' must be a state dict of tensors")
    if not isinstance(latents, torch.Tensor):
        raise InputError(f"{path}: 'latents' must be a tensor")
    sidecars = []
    try:
        model = renderers.HnervPair.from_arrays(spec, {k: v.float().numpy() for k, v in decoder.items()})
        _check(model, latents.float(), frames)
        for key, sidecar in SIDECARS:
            codes = payload.get(key)
            if codes is not None:
                if not isinstance(codes, torch.Tensor):
                    raise InputError(f"{key!r} must be a tensor")
                codes = torch.from_numpy(sidecar.check_codes(codes.numpy(), len(latents)))
            sidecars.append(codes)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return ModelFile(model.eval(), latents.float(), int(frames), *sidecars)
