"""Shared fixtures: small synthetic videos and a quiet, isolated tac environment."""

from __future__ import annotations

import os
import site
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TAC_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session caches under its own folder, never the user's."""
    monkeypatch.setenv("TAC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tac-cache"))


def gradient_frames(n: int, seed: int = 0, hw: tuple[int, int] = (874, 1164)) -> list[np.ndarray]:
    """Smooth, moving colour gradients plus a little noise: easy to encode, not constant."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float32)
    frames = []
    for i in range(n):
        r = (xx / hw[1] * 200 + 8 * i) % 256
        g = (yy / hw[0] * 180 + 30)
        b = ((xx + yy) / (hw[0] + hw[1]) * 255 + rng.normal(0, 2, hw)) % 256
        frames.append(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory) -> Path:
    """A 6-frame 1164x874 HEVC clip in its own folder (the folder's bytes are the clip's)."""
    from tac_core.video import encode_frames

    folder = tmp_path_factory.mktemp("videos")
    path = folder / "clip.mkv"
    encode_frames(path, gradient_frames(6), codec="libx265",
                  options={"preset": "ultrafast", "crf": "18", "x265-params": "log-level=error"})
    return path


def bare_python(folder: Path, first: tuple[Path, ...] = ()) -> Path:
    """A python launcher in ``folder`` that sees ``first``, then site-packages (torch, numpy, av),
    but no installed tac."""
    launcher = folder / "python"
    paths = os.pathsep.join([*map(str, first), *site.getsitepackages()])
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH="{paths}" exec "{sys.executable}" -S "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    return launcher


@pytest.fixture(scope="session")
def python_without_tac(tmp_path_factory):
    """What a submission's inflate.sh meets in the contest environment: a Python with torch, numpy
    and av but no tac (``bare_python``)."""
    folder = tmp_path_factory.mktemp("bare-python")
    launcher = bare_python(folder)
    for package in ("tac_core", "tac_torch", "tac_runtime"):
        check = subprocess.run([str(launcher), "-c", f"import {package}"], capture_output=True, text=True,
                               cwd=folder)
        assert check.returncode != 0 and f"No module named '{package}'" in check.stderr
    return str(launcher)
