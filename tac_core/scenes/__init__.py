"""Synthetic driving scenes: tac's embedded default input (numpy and PyAV only)."""

from tac_core.scenes.config import SceneConfig
from tac_core.scenes.render import Scene

__all__ = ["Scene", "SceneConfig"]
