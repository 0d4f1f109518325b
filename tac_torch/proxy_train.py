"""Train the proxy scorers on synthetic scenes, with real codec artifacts as augmentation.

    scene seed --render pairs (2k, 2k+1) at random k--> frames (874,1164,3) + exact class maps + poses
      --x265 CRF 18 (like every synthetic clip)--> source.mkv --decode--> the clean version
      --x265 / SVT-AV1 at random CRF and scale (ClassicalCodec.encode_member),
        decode, bicubic back up (runtime.classical.upsample_frames)--> degraded versions
    every version --the contest's bilinear resize--> (2,384,512,3) uint8, cached on disk
    train: SegNet on the last frame (cross-entropy against the exact class map, nearest to
           384x512), PoseNet on yuv6 of the pair (MSE against the standardised pose); clean and
           degraded versions share one target, so the nets learn to see content, not artifacts;
           Gaussian noise and blur are added on the fly.

Everything is seeded; the data cache is keyed by its settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tac_core import contract, video
from tac_core.classical import AV1, X265_BASELINE
from tac_core.errors import InputError
from tac_core.scenes import SceneConfig, poses
from tac_core.scenes.clip import CACHE_ENV, x265_options
from tac_core.scenes.render import Scene
from tac_torch import preprocess, proxy

DATA_VERSION = 1
TRAIN_SEED_BASE = 100              # training scenes use seeds 100, 101, ...; held-out ones 0..99
SCENE_SECONDS = 60.0               # pairs are drawn from anywhere in a minute of driving
X265_CRFS = (20, 40)               # inclusive range drawn from
X265_SCALES = (0.35, 1.0)
AV1_CRFS = (30, 40, 50)
AV1_SCALES = (0.35, 0.45, 0.6)
MIRROR_POSE = torch.tensor([-1.0, 1.0, 1.0, 1.0, -1.0, -1.0])   # pose of the left-right mirrored pair


@dataclass(frozen=True)
class DataConfig:
    """What decides the cached training set."""

    frames: int = 192              # rendered frames (pairs * 2)
    pairs_per_scene: int = 8
    x265_versions: int = 2         # degraded versions per pair through x265
    av1_versions: int = 1          # and through SVT-AV1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames < 2 or self.frames % 2:
            raise InputError(f"--frames must be an even number of at least 2, got {self.frames}")
        if self.pairs_per_scene < 1:
            raise InputError(f"pairs per scene must be at least 1, got {self.pairs_per_scene}")

    @property
    def pairs(self) -> int:
        return self.frames // 2

    def key(self) -> str:
        """The cache folder's name: this config, the data version and the clean encode's x265 options
        (x265's output depends on them, and on its frame threads unless they are pinned)."""
        text = json.dumps({**asdict(self), "v": DATA_VERSION, "x265": x265_options()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_dir() -> Path:
    """``$TAC_CACHE_DIR/proxy-data``, else ``~/.cache/tac/proxy-data``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "tac") / "proxy-data"


def model_resize(frames: np.ndarray) -> np.ndarray:
    """(N,874,1164,3) uint8 -> (N,384,512,3) uint8 by the contest's bilinear resize, rounded."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=contract.MODEL_INPUT_HW, mode="bilinear", align_corners=False)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def class_map_resize(class_maps: np.ndarray) -> np.ndarray:
    """(N,874,1164) uint8 -> (N,384,512) uint8 by nearest neighbour."""
    x = torch.from_numpy(np.ascontiguousarray(class_maps))[:, None].float()
    return F.interpolate(x, size=contract.MODEL_INPUT_HW, mode="nearest")[:, 0].to(torch.uint8).numpy()


def degraded(codec, source: Path, work: Path) -> np.ndarray:
    """The frames of ``source`` after ``codec``: encode, decode, bicubic back to camera size."""
    from tac_runtime.classical import upsample_frames

    member = work / f"member-{codec.name}.mkv"
    codec.encode_member(source, member)
    small = np.stack(list(video.decode_frames(member, expect_hw=None)))
    member.unlink()
    return upsample_frames(small, contract.CAMERA_HW)


def random_codecs(rng: np.random.Generator, cfg: DataConfig) -> list:
    """Codec settings for one scene's degraded versions, drawn from the configured ranges."""
    codecs = [X265_BASELINE.with_settings(crf=int(rng.integers(X265_CRFS[0], X265_CRFS[1] + 1)),
                                          scale=round(float(rng.uniform(*X265_SCALES)), 3))
              for _ in range(cfg.x265_versions)]
    codecs += [AV1.with_settings(crf=int(rng.choice(AV1_CRFS)), scale=float(rng.choice(AV1_SCALES)))
               for _ in range(cfg.av1_versions)]
    return codecs


def scene_versions(seed: int, indices: list[int], codecs: list,
                   seconds: float = SCENE_SECONDS) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[dict]]:
    """Clean and degraded full-size frames of the pairs ``indices`` of scene ``seed``.

    Returns (versions: one (2P,874,1164,3) array each, clean first; class maps (P,874,1164) of
    each pair's last frame; poses (P,6); the settings of each version).
    """
    config = SceneConfig(seed=seed, seconds=seconds)
    scene = Scene(config)
    rendered = [scene.frame(f) for k in indices for f in (2 * k, 2 * k + 1)]
    frames = [f for f, _ in rendered]
    class_maps = np.stack([c for _, c in rendered[1::2]])
    pose = poses(config)[indices].astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="tac-proxy-") as tmp:
        source = Path(tmp) / "source.mkv"
        video.encode_frames(source, frames, codec="libx265", fps=config.fps,
                            options=x265_options())
        clean = np.stack(list(video.decode_frames(source)))
        versions = [clean] + [degraded(c, source, Path(tmp)) for c in codecs]
    settings = [{"codec": "clean"}] + [{"codec": c.name, "crf": c.crf, "scale": c.scale} for c in codecs]
    return versions, class_maps, pose, settings


def prepare(cfg: DataConfig, folder: Path | None = None,
            log: Callable[[str], None] = print) -> Path:
    """Render and degrade the training set once; return its cache folder (reused when present).

    Files: ``pairs.npy`` (V,2,384,512,3) u8 of every version, ``owner.npy`` (V,) pair index,
    ``seg.npy`` (P,384,512) u8 targets, ``pose.npy`` (P,6) f32, ``meta.json``.
    """
    out = (folder or data_dir()) / cfg.key()
    if (out / "meta.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    per_version = 1 + cfg.x265_versions + cfg.av1_versions
    n_pairs = cfg.pairs
    pairs = np.lib.format.open_memmap(out / "pairs.tmp.npy", mode="w+", dtype=np.uint8,
                                      shape=(n_pairs * per_version, 2, *contract.MODEL_INPUT_HW, 3))
    owner = np.zeros(n_pairs * per_version, np.int32)
    seg = np.zeros((n_pairs, *contract.MODEL_INPUT_HW), np.uint8)
    pose = np.zeros((n_pairs, 6), np.float32)
    settings, done, v, started = [], 0, 0, time.perf_counter()
    total_pairs = round(SCENE_SECONDS * contract.FPS) // 2
    scene_seed = TRAIN_SEED_BASE
    while done < n_pairs:
        count = min(cfg.pairs_per_scene, n_pairs - done)
        indices = sorted(rng.choice(total_pairs, size=count, replace=False).tolist())
        versions, maps, p6, used = scene_versions(scene_seed, indices, random_codecs(rng, cfg))
        seg[done:done + count] = class_map_resize(maps)
        pose[done:done + count] = p6
        for frames in versions:
            small = model_resize(frames).reshape(count, 2, *contract.MODEL_INPUT_HW, 3)
            pairs[v:v + count] = small
            owner[v:v + count] = np.arange(done, done + count)
            v += count
        settings.append({"scene_seed": scene_seed, "pairs": indices, "versions": used})
        done += count
        scene_seed += 1
        log(f"  data: {done}/{n_pairs} pairs ({time.perf_counter() - started:.0f} s)")
    pairs.flush()
    del pairs
    os.replace(out / "pairs.tmp.npy", out / "pairs.npy")
    np.save(out / "owner.npy", owner)
    np.save(out / "seg.npy", seg)
    np.save(out / "pose.npy", pose)
    meta = {"config": asdict(cfg), "data_version": DATA_VERSION, "scenes": settings,
            "seconds": round(time.perf_counter() - started, 1)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return out


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random Gaussian noise (sigma 0..4 levels) and blur (sigma 0.3..1.2 px) on float 0..255 images.

    ``x`` is (B,C,H,W); each sample draws whether it is blurred and its noise strength, the
    blurred ones share one blur width. Applied after the resize to 384x512 (an approximation
    of doing it at camera size).
    """
    b = x.shape[0]
    blur = torch.rand(b, generator=gen) < 0.3
    if blur.any():
        sigma = 0.3 + 0.9 * torch.rand(1, generator=gen).item()
        taps = torch.arange(-2, 3, dtype=torch.float32)
        kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
        kernel = kernel / kernel.sum()
        c = x.shape[1]
        sel = x[blur]
        sel = F.conv2d(F.pad(sel, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
        sel = F.conv2d(F.pad(sel, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)
        x = x.clone()
        x[blur] = sel
    sigma = 4.0 * torch.rand(b, 1, 1, 1, generator=gen) * (torch.rand(b, 1, 1, 1, generator=gen) < 0.5)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 255)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of both proxies."""

    epochs: int = 4                # SegNet passes over every version
    pose_epochs_factor: int = 3    # PoseNet steps are cheaper: it gets this many more passes
    seg_batch: int = 6
    pose_batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_steps: int | None = None   # stop each net after this many steps (smoke tests)


def _schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=max(steps, 1),
                                               pct_start=0.1)


def _steps(n: int, batch: int, epochs: int, cap: int | None) -> int:
    steps = epochs * max(n // batch, 1)
    return min(steps, cap) if cap is not None else steps


def train_segnet(data: Path, cfg: TrainConfig, log: Callable[[str], None] = print) -> proxy.ProxySegNet:
    """Cross-entropy of the proxy SegNet on every version's last frame against the exact class map."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    pairs = np.load(data / "pairs.npy", mmap_mode="r")
    owner, seg = np.load(data / "owner.npy"), np.load(data / "seg.npy")
    net = proxy.ProxySegNet().train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = _steps(len(owner), cfg.seg_batch, cfg.epochs, cfg.max_steps)
    sched, started = _schedule(opt, steps), time.perf_counter()
    per_epoch = max(len(owner) // cfg.seg_batch, 1)
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(owner), generator=gen).numpy()
        pos = (step % per_epoch) * cfg.seg_batch
        idx = np.sort(order[pos:pos + cfg.seg_batch])
        x = torch.from_numpy(np.ascontiguousarray(pairs[idx, 1])).permute(0, 3, 1, 2).float()
        y = torch.from_numpy(seg[owner[idx]]).long()
        if torch.rand(1, generator=gen).item() < 0.5:          # a mirrored road is still a road
            x, y = x.flip(-1), y.flip(-1)
        loss = F.cross_entropy(net(augment(x, gen)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"  segnet step {step + 1}/{steps} loss {loss.item():.4f} "
                f"({time.perf_counter() - started:.0f} s)")
    return net.eval()


def pose_stats(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-component mean and standard deviation of the training poses (the output scaling)."""
    return pose.mean(0), np.maximum(pose.std(0), 1e-6)


def train_posenet(data: Path, cfg: TrainConfig, log: Callable[[str], None] = print) -> proxy.ProxyPoseNet:
    """MSE of the proxy PoseNet's first six outputs against the standardised true pose."""
    torch.manual_seed(cfg.seed + 1)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    pairs = np.load(data / "pairs.npy", mmap_mode="r")
    owner, pose = np.load(data / "owner.npy"), np.load(data / "pose.npy")
    mean, std = pose_stats(pose)
    raw = torch.from_numpy(pose).float()
    mean_t, std_t = torch.from_numpy(mean).float(), torch.from_numpy(std).float()
    net = proxy.ProxyPoseNet()
    net.pose_mean.copy_(torch.from_numpy(mean))
    net.pose_std.copy_(torch.from_numpy(std))
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = _steps(len(owner), cfg.pose_batch, cfg.epochs * cfg.pose_epochs_factor, cfg.max_steps)
    sched, started = _schedule(opt, steps), time.perf_counter()
    for step in range(steps):
        idx = np.sort(torch.randint(len(owner), (cfg.pose_batch,), generator=gen).numpy())
        x = torch.from_numpy(np.ascontiguousarray(pairs[idx])).permute(0, 1, 4, 2, 3).float()
        b = x.shape[0]
        target = raw[owner[idx]]
        if torch.rand(1, generator=gen).item() < 0.5:          # mirrored drive: t_x, r_y, r_z change sign
            x, target = x.flip(-1), target * MIRROR_POSE
        x = augment(x.flatten(0, 1), gen).view(b, 2, 3, *contract.MODEL_INPUT_HW)
        six = preprocess.yuv6(x.flatten(0, 1))                        # (2B,6,192,256)
        planes = six.reshape(b, 2 * six.shape[1], *six.shape[-2:])   # (B,12,192,256), as officially
        out = net(planes)["pose"][:, :proxy.POSE_DIMS]
        loss = F.mse_loss(out, (target - mean_t) / std_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"  posenet step {step + 1}/{steps} loss {loss.item():.4f} "
                f"({time.perf_counter() - started:.0f} s)")
    return net.eval()


def save(net: torch.nn.Module, path: Path) -> str:
    """Write ``net``'s proxy weight file (float16) atomically; its sha256."""
    from safetensors.torch import save as to_bytes

    from tac_core.files import sha256_bytes, write_atomic

    data = to_bytes(proxy.state_for_file(net))
    write_atomic(path, data)
    return sha256_bytes(data)
