"""The contest's SegNet and PoseNet architectures, and seeded stand-in weights for them.

State-dict keys and shapes are those of the official weight files
(``segnet.safetensors``, ``posenet.safetensors``); see docs/contract.md.

    SegNet   (B,3,384,512) float 0..255 --smp Unet(tu-efficientnet_b2)--> (B,5,384,512) logits
    PoseNet  (B,12,192,256) float 0..255 --(x-127.5)/63.75--> fastvit_t12 (B,2048)
             --summarizer (B,512)--> hydra --> {"pose": (B,12)}
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from tac_core import contract

SEGNET_ENCODER = "tu-efficientnet_b2"
POSENET_VISION = "fastvit_t12"
POSENET_FEATURES = 2048
SUMMARY_FEATURES = 512
HEAD_HIDDEN = 32
HEAD_NAME = "pose"
NORM_EPS = 1e-3
NORM_MOMENTUM = 0.01
BATCHES_TRACKED = "num_batches_tracked"
# Whether each official file holds the BatchNorm step counters, judged by its size:
# PoseNet's size matches exactly without them, SegNet's tensor bytes only with them.
OFFICIAL_HAS_BATCHES_TRACKED = {contract.SEGNET_FILE: True, contract.POSENET_FILE: False}


class Norm(nn.Module):
    """BatchNorm1d(1) over every feature of every sample, flattened to one column."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1, eps=NORM_EPS, momentum=NORM_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.view(-1, 1)).view(x.shape)


class ResBlock(nn.Module):
    """Two residual MLP branches: ``a = relu(x + block_a(x))``, ``relu(a + block_b(a))``.

    The official block_b opens with an in-place ReLU, which rectifies ``a`` itself before
    the residual sum; the rectification is written out here, so autograd sees no in-place op.
    """

    def __init__(self, feats: int, expansion: int = 2):
        super().__init__()
        wide = feats * expansion
        self.block_a = nn.Sequential(
            nn.Linear(feats, wide), Norm(), nn.ReLU(inplace=True),
            nn.Linear(wide, feats), Norm())
        self.block_b = nn.Sequential(
            nn.ReLU(), nn.Linear(feats, wide), Norm(), nn.ReLU(inplace=True),
            nn.Linear(wide, feats), Norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(x + self.block_a(x))
        return torch.relu(a + self.block_b(a))


class Hydra(nn.Module):
    """The head block: a shared ResBlock, then one small residual MLP per named head."""

    def __init__(self, feats: int = SUMMARY_FEATURES, hidden: int = HEAD_HIDDEN,
                 heads: dict[str, int] | None = None):
        super().__init__()
        heads = heads or {HEAD_NAME: contract.POSE_OUTPUTS}
        self.resblock = ResBlock(feats)
        self.in_layer = nn.ModuleDict({n: nn.Linear(feats, hidden) for n in heads})
        self.res_layer = nn.ModuleDict({n: nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden))
            for n in heads})
        self.final_layer = nn.ModuleDict({n: nn.Linear(hidden, out) for n, out in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.resblock(x)
        out = {}
        for name in self.in_layer:
            h = torch.relu(self.in_layer[name](x))
            r = torch.relu(h + self.res_layer[name](h))
            out[name] = self.final_layer[name](r)
        return out


class PoseNet(nn.Module):
    """The contest PoseNet: normalise, fastvit_t12 to 2048 features, summarise, head ``pose``."""

    def __init__(self):
        super().__init__()
        import timm

        channels = contract.POSENET_IN_CHANNELS
        self.register_buffer("_mean", torch.full((1, channels, 1, 1), contract.POSENET_MEAN))
        self.register_buffer("_std", torch.full((1, channels, 1, 1), contract.POSENET_STD))
        self.vision = timm.create_model(
            POSENET_VISION, pretrained=False, num_classes=POSENET_FEATURES, in_chans=channels,
            act_layer=timm.layers.get_act_layer("gelu_tanh"))
        self.summarizer = nn.Sequential(
            nn.Linear(POSENET_FEATURES, SUMMARY_FEATURES), nn.ReLU(inplace=True),
            ResBlock(SUMMARY_FEATURES))
        self.hydra = Hydra()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.hydra(self.summarizer(self.vision((x - self._mean) / self._std)))


def build_segnet() -> nn.Module:
    """A SegNet with library-default initial weights (callers load or seed them)."""
    import segmentation_models_pytorch as smp

    return smp.Unet(SEGNET_ENCODER, classes=contract.SEGNET_CLASSES, activation=None,
                    encoder_weights=None)


def build_posenet() -> nn.Module:
    """A PoseNet with library-default initial weights (callers load or seed them)."""
    return PoseNet()


BUILDERS = {contract.SEGNET_FILE: build_segnet, contract.POSENET_FILE: build_posenet}


def build(file_name: str) -> nn.Module:
    """The architecture stored in ``file_name``, built without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        return BUILDERS[file_name]()


def is_batches_tracked(key: str) -> bool:
    """Whether ``key`` is a BatchNorm step counter, which files may omit."""
    return key.rsplit(".", 1)[-1] == BATCHES_TRACKED


def _generator(seed: int, file_name: str, key: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{file_name}:{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _stand_in_tensor(ref: torch.Tensor, key: str, gen: torch.Generator) -> torch.Tensor:
    """Seeded values shaped like ``ref``, scaled so that activations neither vanish nor explode."""
    leaf = key.rsplit(".", 1)[-1]
    shape = ref.shape
    if not ref.is_floating_point():
        return torch.zeros(shape, dtype=ref.dtype)
    noise = torch.randn(shape, generator=gen, dtype=torch.float32)
    if key in ("_mean", "_std"):
        return ref.detach().clone().float()
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=gen, dtype=torch.float32)
    if leaf == "running_mean":
        return 0.1 * noise
    if leaf == "gamma":                               # fastvit layer scales
        return 0.1 + 0.02 * noise
    if ref.dim() >= 2:                                # conv and linear weights
        fan_in = max(1, ref[0].numel())
        return noise * (1.0 / fan_in) ** 0.5
    if leaf == "weight":                              # norm scales
        return 1.0 + 0.1 * noise
    return 0.05 * noise                               # biases


def stand_in_state_dict(file_name: str, seed: int = 0, with_batches_tracked: bool | None = None,
                        module: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Seeded weights for the architecture of ``file_name``: same keys, shapes and dtypes.

    Each tensor comes from its own generator keyed by (seed, file, key), so the
    result depends only on ``seed`` and not on the global RNG or key order.
    BatchNorm step counters are kept or left out as in the official file, unless
    ``with_batches_tracked`` says otherwise.
    ``module`` is an already built instance of the architecture, to save building one.
    """
    reference = (module if module is not None else build(file_name)).state_dict()
    if with_batches_tracked is None:
        with_batches_tracked = OFFICIAL_HAS_BATCHES_TRACKED[file_name]
    out = {}
    for key, ref in reference.items():
        if is_batches_tracked(key) and not with_batches_tracked:
            continue
        out[key] = _stand_in_tensor(ref, key, _generator(seed, file_name, key)).contiguous()
    return out
