"""Render every ``step``-th frame of a scene in a child process and stream it to stdout.

    python -m tac_core.scenes.worker CONFIG_JSON START STEP

writes, for frames START, START + STEP, ...: the frame's RGB bytes (H*W*3), then its
class map's bytes (H*W). A child process (not a fork) works on every OS and needs no
``__main__`` guard in the caller's script; the pipe's back-pressure bounds memory.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Iterator

import numpy as np

from tac_core.scenes.config import SceneConfig
from tac_core.scenes.render import Scene


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # the parent handles Ctrl-C and stops us
    config, start, step = SceneConfig.from_json(argv[0]), int(argv[1]), int(argv[2])
    scene = Scene(config)
    out = sys.stdout.buffer
    for index in range(start, config.frames, step):
        frame, class_map = scene.frame(index)
        out.write(frame.tobytes())
        out.write(class_map.tobytes())
    out.flush()
    return 0


def _read_exactly(stream, size: int) -> bytes | None:
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = stream.readinto(view[got:])
        if not n:
            return None
        got += n
    return bytes(buf)


def rendered_in_processes(config: SceneConfig, workers: int,
                          hw: tuple[int, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames and class maps in order, rendered by ``workers`` child processes taking turns."""
    h, w = hw
    procs = [subprocess.Popen([sys.executable, "-m", "tac_core.scenes.worker", config.to_json(), str(k),
                               str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for k in range(min(workers, config.frames))]
    try:
        for index in range(config.frames):
            proc = procs[index % len(procs)]
            frame = _read_exactly(proc.stdout, h * w * 3)
            classes = _read_exactly(proc.stdout, h * w) if frame is not None else None
            if classes is None:
                proc.wait()
                reason = proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(f"scene worker stopped at frame {index}: "
                                   f"{reason[-1] if reason else f'exit code {proc.returncode}'}")
            yield (np.frombuffer(frame, np.uint8).reshape(h, w, 3),
                   np.frombuffer(classes, np.uint8).reshape(h, w))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
