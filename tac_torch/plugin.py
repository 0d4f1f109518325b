"""The PyTorch backend's plug-in: what it registers, without importing torch.

Every factory and command imports its torch module only when called.
"""

from __future__ import annotations

from tac_core import BackendInfo, evidence, hookimpl

NAME = "torch"


def probe() -> dict:
    """Framework version and devices (imports torch; called in a subprocess by ``tac backends``)."""
    import torch

    devices = ["cpu"]
    devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return {"version": torch.__version__, "devices": devices}


@hookimpl
def tac_register_backends(register):
    register(BackendInfo(
        name=NAME, framework="torch", probe=f"{__name__}:probe",
        axes=(evidence.CONTEST_CPU, evidence.CONTEST_CUDA, evidence.MACOS_CPU, evidence.OFFICIAL_SCORERS,
              evidence.UNVERIFIED, evidence.PROXY, evidence.STAND_IN),
        description="PyTorch backend (CPU/CUDA): the contest path"))


# --- scorers ----------------------------------------------------------------

def contest_scorers(weights_dir=None, device: str = "cpu", seed: int = 0):
    """The official SegNet and PoseNet from ``weights_dir`` (sha256 checked; ``seed`` unused)."""
    from tac_torch.scorers import load_scorers

    return load_scorers("contest", weights_dir=weights_dir, device=device)


def stand_in_scorers(weights_dir=None, device: str = "cpu", seed: int = 0):
    """The contest architectures with weights seeded by ``seed`` (``weights_dir`` unused)."""
    from tac_torch.scorers import load_scorers

    return load_scorers("stand-in", device=device, seed=seed)


def proxy_scorers(weights_dir=None, device: str = "cpu", seed: int = 0):
    """Small SegNet- and PoseNet-like networks trained on synthetic scenes (``seed`` unused)."""
    from tac_torch.scorers import load_scorers

    return load_scorers("proxy", weights_dir=weights_dir, device=device)


@hookimpl
def tac_register_scorers(register):
    register("contest", contest_scorers,
             "official SegNet and PoseNet loaded from their safetensors files (sha256 checked)")
    register("stand-in", stand_in_scorers,
             "the contest architectures with seeded weights: plumbing and parity tests only")
    register("proxy", proxy_scorers, "small scorers trained on tac's synthetic scenes (axis proxy)")


# --- commands ---------------------------------------------------------------

COMMAND_MODULES = ("tac_torch.commands", "tac_torch.evaluate_cmd", "tac_torch.compress_cmd",
                   "tac_torch.proxy_cmd", "tac_torch.export_cmd", "tac_torch.train_cmd")


@hookimpl
def tac_register_commands(register):
    import importlib

    for module in COMMAND_MODULES:
        for command in importlib.import_module(module).commands():
            register(command)


# --- codecs -----------------------------------------------------------------

def classical_codec(name: str):
    """A factory for the classical codec ``name`` (its inflate runs torch in the submission)."""
    def factory(**settings):
        from tac_core.classical import CODECS

        return CODECS[name].with_settings(**settings)
    return factory


@hookimpl
def tac_register_codecs(register):
    register("x265", classical_codec("x265"), "x265 (the contest's baseline_fast: 0.45x, ultrafast, CRF 30, all-intra)")
    register("av1", classical_codec("av1"), "SVT-AV1 at a chosen CRF and scale, bicubic upsampling on inflate")


# --- renderers ----------------------------------------------------------------

def hnerv_pair_renderer(spec=None, device: str = "cpu", **options):
    """The ``hnerv_pair`` renderer for ``spec`` (the default spec when None)."""
    from tac_torch.renderers import HnervPairRenderer

    return HnervPairRenderer(spec, device=device, **options)


def mask_warp_renderer(spec=None, device: str = "cpu", **options):
    """The ``mask_warp`` renderer for ``spec`` (the default spec when None)."""
    from tac_torch.mask_warp import MaskWarpRenderer

    return MaskWarpRenderer(spec, device=device, **options)


@hookimpl
def tac_register_renderers(register):
    register("hnerv_pair", hnerv_pair_renderer,
             "a per-pair latent decoded by a pixel-shuffle network into both frames (archive id 1)")
    register("mask_warp", mask_warp_renderer,
             "a per-pair class map painted by a class-conditioned U-Net, warped by a pose-driven flow "
             "into the pair's first frame (archive id 2)")
