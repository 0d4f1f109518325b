"""Synthetic driving scenes: tac's embedded default input, deterministic from a seed.

    SceneConfig(seed=0, seconds=10.0, ...)     what decides a clip (validated, frozen)
    generate(config)                           (frame (H,W,3) u8, class_map (H,W) u8) per frame
    poses(config)                              (pairs, 6) float64 relative camera poses
    write_clip(path, config, crf=18)           clip.mkv + clip.npz (ground truth), atomically
    default_clip(cache_dir, seconds=10.0)      the cached default clip's path
    read_ground_truth(npz), iter_class_maps(npz)

Classes: 0 road, 1 lane marking, 2 undrivable, 3 movable object, 4 ego vehicle.
Only numpy and PyAV are used.
"""

from tac_core.scenes.clip import SCENES_VERSION, default_clip, generate, ground_truth_path, poses, write_clip
from tac_core.scenes.config import SceneConfig
from tac_core.scenes.render import Scene
from tac_core.scenes.truth import GroundTruth, iter_class_maps, read_ground_truth

CLASS_NAMES = ("road", "lane marking", "undrivable", "movable object", "ego vehicle")

__all__ = [
    "CLASS_NAMES",
    "GroundTruth",
    "SCENES_VERSION",
    "Scene",
    "SceneConfig",
    "default_clip",
    "generate",
    "ground_truth_path",
    "iter_class_maps",
    "poses",
    "read_ground_truth",
    "write_clip",
]
