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
        axes=(evidence.CONTEST_CPU, evidence.CONTEST_CUDA, evidence.MACOS_CPU, evidence.STAND_IN),
        description="PyTorch backend (CPU/CUDA): the contest path"))
