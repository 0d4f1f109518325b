"""The MLX backend's plug-in: reports MLX and its devices; registers nothing it cannot yet do."""

from __future__ import annotations

from tac_core import BackendInfo, hookimpl

NAME = "mlx"


def probe() -> dict:
    """Framework version and devices (imports MLX; called in a subprocess by ``tac backends``)."""
    import mlx.core as mx

    devices = ["cpu"]
    if mx.metal.is_available():
        devices.append("gpu (metal)")
    return {"version": getattr(mx, "__version__", "?"), "devices": devices}


@hookimpl
def tac_register_backends(register):
    register(BackendInfo(name=NAME, framework="mlx", probe=f"{__name__}:probe",
                         axes=(),
                         description="MLX backend (Apple silicon research): nothing registered yet"))
