"""The PyTorch scorers: the contest's SegNet and PoseNet, official or seeded stand-ins.

    pairs (B,2,H,W,3) u8 --outputs--> {"pose": (B,12) f32, "seg": (B,384,512) u8 argmax}
    reference, candidate outputs --distortion--> (pose (B,) f32, seg (B,) f32)

``load_scorers("contest", weights_dir)`` loads the official safetensors files
and checks their sha256; ``load_scorers("stand-in", seed=K)`` builds the same
architectures with seeded weights (files: ``tac scorers export-stand-in``);
``load_scorers("proxy")`` loads the small networks trained on synthetic scenes
that ship with tac (``tac_torch.proxy``, docs/proxy-scorers.md).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from tac_core import contract
from tac_core.errors import BackendError, InputError, WeightsError
from tac_core.files import require_dir, require_file, sha256_bytes, sha256_file
from tac_torch import preprocess, scorer_nets

CONTEST = "contest"
STAND_IN = "stand-in"
PROXY = "proxy"
KINDS = (CONTEST, STAND_IN, PROXY)
FILES = (contract.SEGNET_FILE, contract.POSENET_FILE)
_NAMED = 4                                   # offending keys named in an error; the rest counted


class UnverifiedWeightsWarning(UserWarning):
    """A weight file fits the architecture but is not the official one."""


def _few(keys: list[str]) -> str:
    named = ", ".join(keys[:_NAMED])
    more = len(keys) - _NAMED
    return f"{named} and {more} more" if more > 0 else named


def check_state_dict(path: Path | str, state: Mapping[str, torch.Tensor], module: nn.Module) -> None:
    """Raise ``WeightsError`` naming ``path`` unless ``state`` fits ``module`` key for key.

    BatchNorm ``num_batches_tracked`` counters may be absent (the official
    PoseNet file has none); every other key must be present with its shape.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not scorer_nets.is_batches_tracked(k)]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape ({_few(wrong)})")
    if problems:
        raise WeightsError(f"{path}: does not fit the {Path(path).name} architecture: "
                           + "; ".join(problems))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or a ``WeightsError`` naming it."""
    from safetensors.torch import load_file

    try:
        require_file(path, "weight file")
    except InputError as exc:
        raise WeightsError(str(exc)) from None
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a malformed file
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def _load_into(module: nn.Module, path: Path | str, state: Mapping[str, torch.Tensor]) -> None:
    check_state_dict(path, state, module)
    module.load_state_dict(dict(state), strict=False)


def load_weights(module: nn.Module, path: Path) -> str:
    """Load the safetensors file ``path`` into ``module`` after checking it fits; its sha256."""
    path = Path(path)
    _load_into(module, path, read_weights(path))
    return sha256_file(path)


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"{device!r} is not a torch device (try cpu or cuda:0)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def seg_classes(logits: torch.Tensor) -> torch.Tensor:
    """SegNet's class per pixel, ``logits.argmax(dim=1)`` exactly (the first of tied maxima), taken
    over a channels-last copy: torch's CPU argmax across the channel dimension of a contiguous
    (B, 5, 384, 512) tensor is several times slower."""
    return logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)


def channels_last_copy(net: nn.Module) -> nn.Module:
    """A frozen, eval-mode copy of a scorer network with channels-last weights, for loops that only
    need its gradients with respect to the input (about a quarter faster on a CPU). Its floats round
    differently from the original's, so exact scoring keeps the original."""
    fast = copy.deepcopy(net).eval().to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


class TorchScorers:
    """SegNet and PoseNet in eval mode on one device: the ``tac_core.interfaces.Scorer`` of torch.

    ``weights_verified`` is True only for the official files (sha256 checked);
    ``weights_sha256`` maps each file name to the sha256 of the bytes loaded
    (for a stand-in, of the file ``export-stand-in`` writes for its seed).
    """

    def __init__(self, kind: str, segnet: nn.Module, posenet: nn.Module,
                 weights_sha256: Mapping[str, str], weights_verified: bool, device: str,
                 seed: int | None = None):
        self.kind = kind
        self.segnet = segnet.eval()
        self.posenet = posenet.eval()
        self.weights_sha256 = dict(weights_sha256)
        self.weights_verified = weights_verified
        self.device = device
        self.seed = seed

    def __repr__(self) -> str:
        return (f"TorchScorers(kind={self.kind!r}, device={self.device!r}, "
                f"weights_verified={self.weights_verified})")

    def outputs(self, pairs: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """PoseNet ``pose`` (B,12) float32 and SegNet argmax ``seg`` (B,384,512) uint8 of a batch."""
        with torch.inference_mode():
            frames = preprocess.frames_float(preprocess.as_pairs_tensor(pairs, self.device))
            posenet_in, segnet_in = preprocess.posenet_input(frames), preprocess.segnet_input(frames)
            del frames  # the full-size float batch (~400 MB for 16 pairs) is not needed by the networks
            pose = self.posenet(posenet_in)["pose"]   # official order: PoseNet, then SegNet
            seg = seg_classes(self.segnet(segnet_in))
            return {"pose": pose.float().cpu().numpy(),
                    "seg": seg.to(torch.uint8).cpu().numpy()}

    def outputs_batched(self, pairs: np.ndarray, batch_pairs: int = contract.BATCH_SIZE) -> dict[str, np.ndarray]:
        """``outputs`` of many pairs ``(P, 2, H, W, 3)``, ``batch_pairs`` at a time, concatenated.

        Results depend on the batch size in the last bits; the evaluator's is 16 pairs.
        """
        parts = self._batched(self.outputs, pairs, batch_pairs)
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    @staticmethod
    def _batched(fn, pairs, batch_pairs: int) -> list:
        """``fn`` of ``pairs`` taken ``batch_pairs`` at a time, in order (at least one batch)."""
        if batch_pairs < 1:
            raise InputError(f"batch size must be positive, got {batch_pairs}")
        if len(pairs) == 0:
            raise InputError("no pairs to score")
        return [fn(pairs[i:i + batch_pairs]) for i in range(0, len(pairs), batch_pairs)]

    def seg_leads(self, pairs: np.ndarray, batch_pairs: int = contract.BATCH_SIZE) -> np.ndarray:
        """Per pixel of SegNet's output on each pair's last frame, by the evaluator's path: the lead
        of its best class's logit over the runner-up's, float16 ``(P, 384, 512)``, >= 0 (a small
        lead: a pixel the original itself nearly gives another class)."""
        def leads(batch) -> np.ndarray:
            with torch.inference_mode():
                frames = preprocess.frames_float(preprocess.as_pairs_tensor(batch, self.device))
                top2 = self.segnet(preprocess.segnet_input(frames)).float().topk(2, dim=1).values
                return (top2[:, 0] - top2[:, 1]).half().cpu().numpy()
        return np.concatenate(self._batched(leads, pairs, batch_pairs))

    def _tensor(self, outputs: Mapping[str, np.ndarray], key: str, which: str) -> torch.Tensor:
        try:
            value = outputs[key]
        except (KeyError, TypeError):
            raise InputError(f"{which} outputs have no {key!r} entry") from None
        array = np.asarray(value)
        if not array.flags.writeable:            # torch will not wrap a read-only buffer
            array = array.copy()
        return torch.as_tensor(array, device=self.device)

    def distortion(self, reference: Mapping[str, np.ndarray],
                   candidate: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample (pose, seg) distortions, float32, computed in torch as officially."""
        pose_a = self._tensor(reference, "pose", "reference")
        pose_b = self._tensor(candidate, "pose", "candidate")
        seg_a = self._tensor(reference, "seg", "reference")
        seg_b = self._tensor(candidate, "seg", "candidate")
        if pose_a.shape != pose_b.shape or pose_a.dim() != 2 or pose_a.shape[1] < contract.POSE_SCORED:
            raise InputError(f"pose outputs must both be (B, {contract.POSE_OUTPUTS}); got "
                             f"{tuple(pose_a.shape)} and {tuple(pose_b.shape)}")
        if seg_a.shape != seg_b.shape or seg_a.dim() != 3 or seg_a.shape[0] != pose_a.shape[0]:
            raise InputError(f"seg outputs must both be (B, H, W) with B = {pose_a.shape[0]}; got "
                             f"{tuple(seg_a.shape)} and {tuple(seg_b.shape)}")
        n = contract.POSE_SCORED
        with torch.inference_mode():
            pose = (pose_a.float()[..., :n] - pose_b.float()[..., :n]).pow(2).mean(dim=1)
            seg = (seg_a != seg_b).float().mean(dim=(1, 2))
        return pose.cpu().numpy(), seg.cpu().numpy()


def _contest(weights_dir: Path | None, dev: torch.device) -> TorchScorers:
    if weights_dir is None:
        raise WeightsError("contest scorers need the folder holding "
                           f"{contract.SEGNET_FILE} and {contract.POSENET_FILE}")
    try:
        folder = require_dir(Path(weights_dir), "scorer weights folder")
    except InputError as exc:
        raise WeightsError(str(exc)) from None
    modules, shas = {}, {}
    for name in FILES:
        path = folder / name
        module = scorer_nets.build(name)
        shas[name] = load_weights(module, path)
        modules[name] = module.to(dev)
    mismatched = [n for n in FILES if shas[n] != contract.OFFICIAL_SHA256[n]]
    if mismatched:
        warnings.warn(f"{', '.join(str(folder / n) for n in mismatched)}: sha256 differs from the "
                      "official file; these scorers load, but their results are not contest "
                      "results (weights_verified is False)", UnverifiedWeightsWarning, stacklevel=3)
    return TorchScorers(CONTEST, modules[contract.SEGNET_FILE], modules[contract.POSENET_FILE],
                        shas, not mismatched, str(dev))


def stand_in_files(seed: int = 0) -> dict[str, bytes]:
    """The safetensors bytes of the stand-in weight files for ``seed``, by file name."""
    from safetensors.torch import save

    return {name: save(scorer_nets.stand_in_state_dict(name, seed)) for name in FILES}


def _stand_in(seed: int, dev: torch.device) -> TorchScorers:
    from safetensors.torch import save

    modules, shas = {}, {}
    for name in FILES:
        module = scorer_nets.build(name)
        state = scorer_nets.stand_in_state_dict(name, seed, module=module)
        _load_into(module, f"stand-in {name} (seed {seed})", state)
        modules[name] = module.to(dev)
        shas[name] = sha256_bytes(save(state))
    return TorchScorers(STAND_IN, modules[contract.SEGNET_FILE], modules[contract.POSENET_FILE],
                        shas, False, str(dev), seed=seed)


def _proxy(weights_dir: Path | None, dev: torch.device) -> TorchScorers:
    from tac_torch import proxy

    folder = proxy.WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    modules, shas = {}, {}
    for name in proxy.FILES:
        path = folder / name
        module = proxy.build(name)
        _load_into(module, path, proxy.as_float32(read_weights(path)))
        shas[name] = sha256_file(path)
        modules[name] = module.to(dev)
    return TorchScorers(PROXY, modules[proxy.SEGNET_FILE], modules[proxy.POSENET_FILE],
                        shas, False, str(dev))


def load_scorers(kind: str, weights_dir: Path | None = None, device: str = "cpu",
                 seed: int = 0) -> TorchScorers:
    """The scorers of ``kind``: "contest" (from ``weights_dir``), "stand-in" (from ``seed``)
    or "proxy" (the shipped proxy files, or those in ``weights_dir``)."""
    if kind not in KINDS:
        raise BackendError(f"unknown scorer kind {kind!r}; torch has {', '.join(KINDS)}")
    dev = _device(device)
    if kind == CONTEST:
        return _contest(weights_dir, dev)
    if kind == PROXY:
        return _proxy(weights_dir, dev)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"stand-in seed must be a non-negative integer, got {seed!r}")
    return _stand_in(seed, dev)
