"""Generate a clip, write it (HEVC video plus ground truth), and cache the default one.

    SceneConfig --generate--> (frame (H,W,3) u8, class_map (H,W) u8), one frame at a time
        frames     --libx265 (preset, CRF)--> clip.mkv
        class maps --deflate-------------->  clip.npz  (+ poses, config; see ``truth``)

Both files are written under temporary names and renamed only when complete,
ground truth first, so a video under its final name always has its ``.npz``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from tac_core import video
from tac_core.errors import InputError
from tac_core.scenes.camera import Camera
from tac_core.scenes.config import SceneConfig
from tac_core.scenes.motion import relative_pose
from tac_core.scenes.render import Scene
from tac_core.scenes.truth import TruthWriter
from tac_core.scenes.worker import rendered_in_processes

SCENES_VERSION = 1          # bump whenever generated pixels, classes or poses change
DEFAULT_CRF = 18
DEFAULT_PRESET = "fast"
VIDEO_SUFFIXES = (".mkv", ".mp4")
CACHE_ENV = "TAC_CACHE_DIR"
PARALLEL_FROM = 40         # frames; shorter clips are rendered in-process (no start-up cost)
# x265 picks its number of frame threads from the machine's cores, and more than one changes the
# encoded pixels (a 2-core machine gets 1 frame thread, a 16-core one several). One frame thread
# makes the clip the same everywhere; the thread pool (wavefront rows, lookahead) still uses
# every core and leaves the pixels alone.
X265_PARAMS = "log-level=error:frame-threads=1"
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


def generate(config: SceneConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames and class maps of the clip, in order: (H,W,3) uint8 RGB, (H,W) uint8 classes."""
    scene = Scene(config)
    for index in range(config.frames):
        yield scene.frame(index)



def poses(config: SceneConfig) -> np.ndarray:
    """(pairs, 6) float64: for each pair (2i, 2i+1), camera 2i+1 in camera 2i's frame.

    Columns t_x, t_y, t_z (metres) and the rotation vector r_x, r_y, r_z (radians);
    axes x right, y down, z forward (see ``tac_core.scenes.motion``).
    """
    return _poses(Scene(config))


def _poses(scene: Scene) -> np.ndarray:
    ego, fps = scene.ego, scene.config.fps
    out = np.zeros((scene.config.pairs, 6))
    for i in range(scene.config.pairs):
        out[i] = relative_pose(ego.camera_world(ego.state(2 * i / fps)),
                               ego.camera_world(ego.state((2 * i + 1) / fps)))
    return out


def ground_truth_path(path: Path) -> Path:
    """Where the ground truth of the clip at ``path`` lives: ``<stem>.npz`` beside it."""
    return Path(path).with_suffix(".npz")


def _check_output(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{path}: the clip must be written as {' or '.join(VIDEO_SUFFIXES)}, "
                         f"not {path.suffix or 'a name without suffix'}")
    if not path.parent.is_dir():
        raise InputError(f"{path}: output folder {path.parent} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a video file name")
    return path


def write_clip(path: Path, config: SceneConfig = SceneConfig(), *, crf: int = DEFAULT_CRF,
               preset: str = DEFAULT_PRESET, progress: Callable[[int], Any] | None = None,
               workers: int | None = None) -> dict[str, Any]:
    """Write the clip to ``path`` (HEVC, .mkv or .mp4) and its ground truth to ``<stem>.npz``.

    ``progress(1)`` is called after each frame; ``workers`` render processes run beside the
    encoder (default: one per CPU for clips of ``PARALLEL_FROM`` frames or more, else none).
    Returns the paths, frame count, video bytes and the seconds it took. Interrupted, it leaves no
    file under either final name.
    """
    path = _check_output(path)
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise InputError(f"CRF must be an integer from 0 to 51, got {crf!r}")
    if preset not in X265_PRESETS:
        raise InputError(f"unknown x265 preset {preset!r}; expected one of {', '.join(X265_PRESETS)}")
    truth_path = ground_truth_path(path)
    tag = f"{os.getpid()}.tmp"
    tmp_video = path.with_name(f".{path.stem}.{tag}{path.suffix}")
    tmp_truth = path.with_name(f".{path.stem}.{tag}.npz")
    started = time.perf_counter()
    scene = Scene(config)
    truth = TruthWriter(tmp_truth, config.frames, scene.camera.hw)
    finished = False

    def frames() -> Iterator[np.ndarray]:
        for frame, class_map in rendered(config, workers, scene):
            truth.add(class_map)
            if progress is not None:
                progress(1)
            yield frame

    try:
        count = video.encode_frames(tmp_video, frames(), codec="libx265", fps=config.fps,
                                    options=x265_options(crf, preset))
        truth.close(_poses(scene), config, SCENES_VERSION)
        finished = True
        os.replace(tmp_truth, truth_path)
        os.replace(tmp_video, path)
    finally:
        if not finished:
            truth.abort()
        for tmp in (tmp_video, tmp_truth):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return {"video": str(path), "ground_truth": str(truth_path), "frames": count,
            "video_bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 2),
            "crf": crf, "preset": preset, "config": config.to_json()}


def x265_options(crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> dict[str, str]:
    """PyAV options for libx265 that give the same decoded clip on every machine (``X265_PARAMS``)."""
    return {"crf": str(crf), "preset": preset, "x265-params": X265_PARAMS}


def rendered(config: SceneConfig, workers: int | None = None,
             scene: Scene | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``generate``, rendered ahead of the consumer: in ``workers`` child processes, or in a thread.

    Frames depend only on (config, index), so the output is identical either way.
    """
    if workers is None:
        workers = (os.cpu_count() or 1) if config.frames >= PARALLEL_FROM else 0
    if workers < 1:
        scene = scene or Scene(config)
        yield from video.prefetch((scene.frame(i) for i in range(config.frames)), depth=3)
        return
    yield from rendered_in_processes(config, workers, scene.camera.hw if scene else Camera().hw)


def cache_dir() -> Path:
    """Folder of cached scenes: ``$TAC_CACHE_DIR/scenes``, else ``~/.cache/tac/scenes``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "tac") / "scenes"


def default_clip(cache: Path | None = None, seconds: float = 10.0, *, seed: int = 0,
                 progress: Callable[[int], Any] | None = None) -> Path:
    """The embedded default input: a clip generated once into ``cache`` and reused.

    The file name carries a hash of the config, encoder settings and ``SCENES_VERSION``,
    so a changed generator never serves a stale clip; two processes racing to create it
    each write their own temporary files and the last rename wins (the files are equal).
    """
    config = SceneConfig(seed=seed, seconds=seconds)
    settings = f"{SCENES_VERSION}|{sorted(x265_options().items())}|{config.to_json()}"
    key = hashlib.sha256(settings.encode())
    folder = Path(cache) if cache is not None else cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the scene cache folder ({exc.strerror})") from None
    path = folder / f"scene-seed{seed}-{config.frames}f-{key.hexdigest()[:16]}.mkv"
    if not (path.is_file() and ground_truth_path(path).is_file()):
        write_clip(path, config, progress=progress)
    return path
