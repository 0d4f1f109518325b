"""Training checkpoints: written atomically, read back with ``weights_only`` and checked.

A checkpoint is ``torch.save`` of a dict of tensors, numbers, strings and
lists (no pickled objects): the step, the decoder, latents, EMA, optimiser
states, the RNG states and the recipe's fingerprint. Files are named
``step-<8 digits>.pt`` under ``<out>/checkpoints/``; a file only appears
under that name once it is complete.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tac_core.errors import InputError
from tac_core.files import atomic_output

FOLDER = "checkpoints"
FORMAT = 1
_NAME = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointError(InputError):
    """A checkpoint is unreadable, truncated, or belongs to another recipe or clip."""


def checkpoint_dir(out_dir: Path) -> Path:
    return Path(out_dir) / FOLDER


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return checkpoint_dir(out_dir) / f"step-{step:08d}.pt"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint with the highest step under ``out_dir``, or None."""
    folder = checkpoint_dir(out_dir)
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return found[-1][1] if found else None


def resume_point(out_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from: the latest one when ``resume``, else None; a fresh
    run refuses a folder that already holds checkpoints (``InputError``) rather than mix two runs."""
    last = latest_checkpoint(out_dir)
    if last is not None and not resume:
        raise InputError(f"{out_dir} already holds checkpoints ({last.name}); pass --resume to "
                         "continue that run or choose a new output folder")
    return last


def rng_state() -> dict[str, Any]:
    """The torch, numpy and Python RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": version, "state": list(py_state), "gauss": py_gauss}}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(out_dir: Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` as the checkpoint of ``step`` atomically; keep the newest ``keep`` files."""
    path = checkpoint_path(out_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "step": step, **state}, buf)
    with atomic_output(path) as f:
        f.write(buf.getvalue())
    folder = checkpoint_dir(out_dir)
    old = sorted(p for p in folder.iterdir() if _NAME.match(p.name))[:-keep]
    for p in old:
        p.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, fingerprint: str | None = None, data_key: str | None = None,
                    recipe_name: str = "this run's") -> dict[str, Any]:
    """A checkpoint's dict; ``CheckpointError`` when it is unreadable or was written for another
    recipe (``fingerprint``) or another clip (``data_key``)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:   # torch raises several kinds for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable tac checkpoint (corrupt or truncated: "
                              f"{type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tac training checkpoint (format {FORMAT})")
    if fingerprint is not None and state.get("recipe_fingerprint") != fingerprint:
        raise CheckpointError(f"{path}: written by recipe {state.get('recipe_name')!r} "
                              f"({str(state.get('recipe_fingerprint'))[:12]}), but this run uses recipe "
                              f"{recipe_name!r} ({fingerprint[:12]}); resume with the same recipe or use a new "
                              "output folder")
    if data_key is not None and state.get("data_key") != data_key:
        raise CheckpointError(f"{path}: written for another clip or other scorers; "
                              "resume with the same inputs or use a new output folder")
    return state
