"""The JAX backend's plug-in: reports JAX and its devices; registers nothing it cannot yet do."""

from __future__ import annotations

from tac_core import BackendInfo, hookimpl

NAME = "jax"


def probe() -> dict:
    """Framework version and devices (imports JAX; called in a subprocess by ``tac backends``)."""
    import jax

    return {"version": jax.__version__, "devices": [str(d) for d in jax.devices()]}


@hookimpl
def tac_register_backends(register):
    register(BackendInfo(name=NAME, framework="jax", probe=f"{__name__}:probe",
                         axes=(), description="JAX backend (TPU research): nothing registered yet"))
