"""Video I/O in numpy and PyAV: decode exactly as the contest's CPU path does, stream pairs,
write and memory-map headerless ``.raw`` frame files, and encode clips.

Decoding (CONTRACT.md, "Ground-truth frames"):

    yuv420p frame --chroma x2 bilinear (align_corners=False)--> Y, U, V (H,W) float32
        --BT.601 limited range--> R, G, B --clamp [0,255], round half to even--> (H,W,3) uint8

All arithmetic is float32 in the order the contract's reference uses, so the
bytes equal those of the official decoder (tested against an independent
torch implementation).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from tac_core import contract
from tac_core.errors import RawFramesError, VideoError

_F = np.float32
_Y_SCALE = _F(255.0 / 219.0)
_C_SCALE = _F(255.0 / 224.0)
_R_V, _G_U, _G_V, _B_U = _F(1.402), _F(0.344136), _F(0.714136), _F(1.772)


# --- colour ----------------------------------------------------------------
def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of 1-D linear resampling, align_corners=False, float32."""
    dst = np.arange(out_size, dtype=_F)
    if in_size == out_size:
        idx = np.arange(out_size)
        return idx, idx, np.ones(out_size, _F), np.zeros(out_size, _F)
    scale = _F(in_size) / _F(out_size)
    src = np.maximum(scale * (dst + _F(0.5)) - _F(0.5), _F(0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0.astype(_F)).astype(_F)
    w0 = (_F(1) - w1).astype(_F)
    return i0, i1, w0, w1


def upsample_bilinear(plane: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D plane to ``out_hw`` (align_corners=False), float32.

    Bit-exact with torch's ``F.interpolate`` for the 2x chroma upsampling of even-sized
    frames (every weight is 0, 0.25, 0.75 or 1, so no rounding occurs); other ratios agree
    to about 1e-4.
    """
    x = plane.astype(_F, copy=False)
    r0, r1, rw0, rw1 = _linear_taps(x.shape[0], out_hw[0])
    c0, c1, cw0, cw1 = _linear_taps(x.shape[1], out_hw[1])
    top = x[r0][:, c0] * cw0 + x[r0][:, c1] * cw1
    bottom = x[r1][:, c0] * cw0 + x[r1][:, c1] * cw1
    return top * rw0[:, None] + bottom * rw1[:, None]


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The contract's yuv420p -> RGB conversion: (H,W) luma and half-size chroma -> (H,W,3) uint8."""
    h, w = y.shape
    yf = (y.astype(_F) - _F(16.0)) * _Y_SCALE
    uf = (upsample_bilinear(u, (h, w)) - _F(128.0)) * _C_SCALE
    vf = (upsample_bilinear(v, (h, w)) - _F(128.0)) * _C_SCALE
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    for c, plane in enumerate((yf + _R_V * vf, yf - _G_U * uf - _G_V * vf, yf + _B_U * uf)):
        rgb[..., c] = np.rint(np.clip(plane, _F(0), _F(255)))
    return rgb


def frame_to_rgb(frame: Any) -> np.ndarray:
    """A PyAV ``VideoFrame`` -> (H,W,3) uint8 by the contract's conversion."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    h, w = frame.height, frame.width
    planes = []
    for i, (ph, pw) in enumerate(((h, w), (h // 2, w // 2), (h // 2, w // 2))):
        p = frame.planes[i]
        planes.append(np.frombuffer(p, dtype=np.uint8).reshape(-1, p.line_size)[:ph, :pw])
    return yuv420_to_rgb(*planes)


# --- decoding --------------------------------------------------------------
def _open(path: Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video not found")
    try:
        container = av.open(str(path), format="hevc" if path.suffix == ".hevc" else None)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{path}: cannot open video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


def decode_frames(path: Path, expect_hw: tuple[int, int] | None = contract.CAMERA_HW,
                  raw: bool = False) -> Iterator[Any]:
    """Frames of a video in order: (H,W,3) uint8 RGB arrays, or PyAV frames when ``raw``.

    With ``expect_hw`` set, a frame of another size raises ``VideoError``.
    """
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if expect_hw is not None and (frame.height, frame.width) != tuple(expect_hw):
                    raise VideoError(f"{path}: frames are {frame.width}x{frame.height}, "
                                     f"expected {expect_hw[1]}x{expect_hw[0]}")
                yield frame if raw else frame_to_rgb(frame)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed ({exc})") from None
    finally:
        container.close()


def probe(path: Path) -> dict[str, Any]:
    """Width, height, frame rate and (counted, not guessed) frame count of a video."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
        ctx = stream.codec_context
        return {"width": ctx.width, "height": ctx.height, "frames": frames,
                "fps": float(stream.average_rate or stream.guessed_rate or 0), "codec": ctx.name}
    finally:
        container.close()


def prefetch(items: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, ``depth`` ahead (decoding overlaps scoring).

    Exceptions in the producer are re-raised in the consumer; stopping early stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as exc:  # handed to the consumer
            q.put((False, exc))

    thread = threading.Thread(target=produce, name="tac-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def pair_batches(frames: Iterable[np.ndarray], batch_size: int = contract.BATCH_SIZE) -> Iterator[np.ndarray]:
    """Group frames into batches of pairs ``(B, 2, H, W, 3)``; the last batch may be partial.

    A last unpaired frame is dropped, as the contest's sampling does.
    """
    batch: list[np.ndarray] = []
    pending: np.ndarray | None = None
    for frame in frames:
        if pending is None:
            pending = frame
            continue
        batch.append(np.stack([pending, frame]))
        pending = None
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


# --- raw frame files -------------------------------------------------------
def raw_frame_count(path: Path, hw: tuple[int, int] = contract.CAMERA_HW) -> int:
    """Frames in a headerless uint8 RGB ``.raw`` file; refuses a size that is not whole frames."""
    path = Path(path)
    if not path.is_file():
        raise RawFramesError(f"{path}: inflated .raw file not found")
    size = path.stat().st_size
    frame_bytes = hw[0] * hw[1] * 3
    if size == 0 or size % frame_bytes:
        raise RawFramesError(f"{path}: {size:,} bytes is not a whole number of {hw[1]}x{hw[0]} RGB "
                             f"frames ({frame_bytes:,} bytes each)")
    return size // frame_bytes


def open_raw(path: Path, hw: tuple[int, int] = contract.CAMERA_HW) -> np.ndarray:
    """Memory-map a ``.raw`` file as (N, H, W, 3) uint8, read-only."""
    n = raw_frame_count(path, hw)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(n, hw[0], hw[1], 3))


def write_raw(path: Path, frames: Iterable[np.ndarray], hw: tuple[int, int] = contract.CAMERA_HW) -> int:
    """Stream frames into ``path`` atomically (a partial file never carries the final name)."""
    from tac_core.files import atomic_output

    n = 0
    with atomic_output(Path(path)) as f:
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.shape[-3:] != (hw[0], hw[1], 3):
                raise RawFramesError(f"{path}: frames must be uint8 {(hw[0], hw[1], 3)}, "
                                     f"got {frame.dtype} {frame.shape}")
            f.write(np.ascontiguousarray(frame).tobytes())
            n += frame.size // (hw[0] * hw[1] * 3)
    return n


# --- encoding --------------------------------------------------------------
def encode_frames(path: Path, frames: Iterable[Any], *, codec: str = "libx265", fps: int = contract.FPS,
                  options: Mapping[str, str] | None = None, size: tuple[int, int] | None = None,
                  interpolation: str | None = None) -> int:
    """Encode RGB arrays or PyAV frames to ``path`` (container from its suffix), atomically.

    ``size`` = (W, H) rescales each frame with swscale (``interpolation`` such as "LANCZOS")
    before encoding in yuv420p. Returns the number of frames written.
    """
    import av
    from fractions import Fraction

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    n = 0
    try:
        with av.open(str(tmp), mode="w") as out:
            stream = None
            for item in frames:
                frame = item if isinstance(item, av.VideoFrame) else av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(item), format="rgb24")
                w, h = size or (frame.width, frame.height)
                if stream is None:
                    stream = out.add_stream(codec, rate=Fraction(fps))
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.options = dict(options or {})
                frame = frame.reformat(width=w, height=h, format="yuv420p", interpolation=interpolation)
                frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose frame types
                frame.pts = n
                frame.time_base = Fraction(1, fps)
                out.mux(stream.encode(frame))
                n += 1
            if stream is None:
                raise VideoError(f"{path}: no frames to encode")
            out.mux(stream.encode(None))
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n
