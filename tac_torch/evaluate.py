"""The contest evaluator on PyTorch: components and score equal to the official evaluator's.

    originals --decode (thread)--> pairs --scorers--> reference outputs --(cache by sha256)
    inflated/*.raw --memmap (thread)--> pairs --scorers--> candidate outputs
    reference, candidate --distortion--> per-sample pose, seg --float32 sums--> means

It keeps the official computation order (batches of 16 pairs, the same layouts
and dtypes, float32 accumulation), so each component matches the official one
to float rounding. Differences from the official harness: decoding overlaps
scoring, the reference outputs are cached (they depend only on the video, the
weights, the batch size and the device), and mismatched frame counts are refused.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from tac_core import contract, evidence, submission, video
from tac_core.files import sha256_file, write_atomic
from tac_core.progress import progress

CACHE_ENV = "TAC_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "tac")) / "reference-outputs"


@dataclass
class Result:
    components: contract.Components
    record: evidence.ScoreRecord
    report: str


class _ReferenceCache:
    """Scorer outputs on an original video, stored as one ``.npz`` per (video, weights, batch, device)."""

    def __init__(self, root: Path | None, video_sha: str, weights_sha: dict[str, str], batch_size: int,
                 device: str):
        key = "-".join([video_sha[:24], *(weights_sha[k][:16] for k in sorted(weights_sha)),
                        f"b{batch_size}", device.replace(":", "")])
        self.path = None if root is None else Path(root) / f"{key}.npz"
        self.pose: list[np.ndarray] = []
        self.seg: list[np.ndarray] = []

    def load(self) -> dict[str, np.ndarray] | None:
        if self.path is None or not self.path.is_file():
            return None
        try:
            with np.load(self.path) as data:
                return {"pose": data["pose"], "seg": data["seg"]}
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache is recomputed, never trusted

    def add(self, outputs: dict[str, np.ndarray]) -> None:
        self.pose.append(outputs["pose"])
        self.seg.append(outputs["seg"])

    def save(self) -> None:
        if self.path is None:
            return
        import io

        self.path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez_compressed(buf, pose=np.concatenate(self.pose), seg=np.concatenate(self.seg))
        write_atomic(self.path, buf.getvalue())


def _raw_batches(path: Path, batch_size: int) -> Iterator[np.ndarray]:
    """Pairs of an inflated ``.raw`` file, read batch by batch with plain reads (memory stays bounded)."""
    frames = video.raw_frame_count(path)
    with open(path, "rb") as f:
        for b in contract.batches(contract.sample_count(frames), batch_size):
            f.seek(b.frame_range.start * contract.FRAME_BYTES)
            data = np.fromfile(f, dtype=np.uint8, count=len(b.frame_range) * contract.FRAME_BYTES)
            yield data.reshape(b.count, contract.SEQ_LEN, *contract.CAMERA_HW, 3)


def _cached_batches(ref: dict[str, np.ndarray], samples: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    for b in contract.batches(samples, batch_size):
        yield {k: v[b.first:b.first + b.count] for k, v in ref.items()}


def evaluate(submission_dir: Path, video_dir: Path, scorers, *, names_file: Path | None = None,
             batch_size: int = contract.BATCH_SIZE, cache_dir: Path | None = None, use_cache: bool = True,
             rate_basis: str = "folder", show_progress: bool = True, command: str | None = None,
             write: bool = True) -> Result:
    """Score ``submission_dir`` (its archive.zip and inflated/*.raw) against the originals in ``video_dir``.

    Writes ``report.txt`` and ``score.json`` into the submission folder (atomically, at the end)
    unless ``write`` is false.
    """
    submission_dir = Path(submission_dir)
    if write:
        for stale in ("report.txt", "score.json"):
            (submission_dir / stale).unlink(missing_ok=True)
    inputs = submission.gather(submission_dir, video_dir, names_file, rate_basis)
    device = torch.device(scorers.device)
    pose_sum = torch.zeros([], device=device)
    seg_sum = torch.zeros([], device=device)
    count = torch.zeros([], device=device)
    video_sha, inflated_sha = {}, {}
    cache_root = (cache_dir or default_cache_dir()) if use_cache else None

    bar = progress(total=inputs.samples, desc="evaluate", unit="pair", disable=not show_progress)
    for pair in inputs.videos:
        video_sha[pair.name] = sha256_file(pair.original)
        inflated_sha[pair.name] = sha256_file(pair.inflated)
        cache = _ReferenceCache(cache_root, video_sha[pair.name], dict(scorers.weights_sha256),
                                batch_size, str(device))
        cached = cache.load()
        if cached is not None and cached["pose"].shape[0] != pair.samples:
            cached = None
        if cached is not None:
            references = _cached_batches(cached, pair.samples, batch_size)
        else:
            frames = video.decode_frames(pair.original)
            references = (scorers.outputs(b) for b in video.prefetch(video.pair_batches(frames, batch_size), 2))
        candidates = video.prefetch(_raw_batches(pair.inflated, batch_size), 2)
        for reference, candidate in zip(references, candidates, strict=True):
            if cached is None:
                cache.add(reference)
            cand = scorers.outputs(candidate)
            pose_d, seg_d = scorers.distortion(reference, cand)
            pose_sum += torch.as_tensor(pose_d, device=device).sum()
            seg_sum += torch.as_tensor(seg_d, device=device).sum()
            count += candidate.shape[0]
            bar.update(candidate.shape[0])
        if cached is None:
            cache.save()
    bar.close()

    pose = (pose_sum / count).item()
    seg = (seg_sum / count).item()
    components = contract.Components(samples=int(count.item()), seg=seg, pose=pose,
                                     archive_bytes=inputs.archive_bytes, original_bytes=inputs.original_bytes)
    total_samples = sum(p.samples for p in inputs.videos)
    axis = evidence.axis_for(
        scorer_kind=scorers.kind, weights_verified=getattr(scorers, "weights_verified", False),
        video_sha256=next(iter(video_sha.values())) if len(video_sha) == 1 else "",
        samples=components.samples, video_samples=total_samples, decode_path=evidence.DECODE_CPU,
        device=device.type, backend="torch")
    record = evidence.ScoreRecord(
        axis=axis, samples=components.samples, seg=seg, pose=pose, archive_bytes=inputs.archive_bytes,
        original_bytes=inputs.original_bytes, rate=components.rate, score=components.score,
        archive_sha256=sha256_file(inputs.archive), inflated_sha256=inflated_sha, video_sha256=video_sha,
        scorer_weights_sha256=dict(scorers.weights_sha256), device=str(device), backend="torch",
        decode_path=evidence.DECODE_CPU, command=command or shlex.join(sys.argv),
        notes=[f"rate basis: {inputs.rate_basis}"])
    report = "\n".join([f"=== tac evaluate: evidence axis {axis} ===", *contract.report_lines(components)]) + "\n"
    if write:
        write_atomic(submission_dir / "score.json", record.to_json())
        write_atomic(submission_dir / "report.txt", report)
    return Result(components, record, report)
