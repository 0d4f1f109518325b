"""A chain: byte transforms then one entropy stage, as recorded in a section (docs section 5).

``encode_stream``/``decode_stream`` run a chain; ``write_chain``/``read_chain``
put it in the header. The raw size is never stored: the reader computes it
from shapes and quantizers and holds every stage to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tac_core.archive import entropy, transforms
from tac_core.archive import format as fmt
from tac_core.archive.varint import Cursor, uvarint


@dataclass(frozen=True)
class Transform:
    """A byte transform: its stable ``id`` and one integer argument."""

    id: int
    arg: int

    def __str__(self) -> str:
        return f"{fmt.TRANSFORMS.get(self.id, f'transform#{self.id}')}({self.arg})"


@dataclass(frozen=True)
class Stage:
    """An entropy stage: its stable ``id`` and its recorded arguments."""

    id: int
    args: tuple[int, ...] = ()

    def __str__(self) -> str:
        name = fmt.STAGES.get(self.id, f"stage#{self.id}")
        return f"{name}({','.join(map(str, self.args))})" if self.args else name


@dataclass(frozen=True)
class Chain:
    """Transforms applied in order, then ``stage``."""

    transforms: tuple[Transform, ...]
    stage: Stage

    def __str__(self) -> str:
        return "+".join([str(t) for t in self.transforms] + [str(self.stage)])

    def check(self, size: int) -> None:
        """Refuse a chain that cannot apply to a raw stream of ``size`` bytes."""
        if len(self.transforms) > fmt.MAX_TRANSFORMS:
            raise transforms.MalformedArchiveError(f"chain has {len(self.transforms)} transforms, "
                                                   f"above the cap of {fmt.MAX_TRANSFORMS}")
        for t in self.transforms:
            transforms.check_transform(t.id, t.arg, size)
        entropy.check_stage_args(self.stage.id, self.stage.args)


STORE = Chain((), Stage(fmt.S_STORE))


def classmap_chain(height: int, width: int, classes: int, version: int | None = None) -> Chain:
    """The chain that codes a raw uint8 tensor of (count, height, width) class maps with ``classmap2``
    (``version`` 2, the newest, the default) or ``classmap`` (1)."""
    stages = {v: sid for sid, v in fmt.CLASSMAP_STAGES.items()}
    sid = stages.get(max(stages) if version is None else version)
    if sid is None:
        raise ValueError(f"classmap version must be one of {sorted(fmt.CLASSMAP_STAGES.values())}, got {version!r}")
    return Chain((), Stage(sid, (height, width, classes)))


def encode_stream(raw: bytes, chain: Chain, level: int | None = None,
                  groups: tuple[tuple[int, int], ...] | None = None) -> bytes:
    """The coded bytes of ``raw`` under ``chain`` (``groups``: ``range_grouped``'s layout)."""
    chain.check(len(raw))
    x = np.frombuffer(raw, dtype=np.uint8)
    for t in chain.transforms:
        x = transforms.forward(t.id, t.arg, x)
    return entropy.encode(chain.stage.id, chain.stage.args, x.tobytes(), level, groups)


def decode_stream(coded: bytes, chain: Chain, size: int) -> bytes:
    """Exactly ``size`` raw bytes from ``coded`` (``ArchiveError`` otherwise)."""
    chain.check(size)
    x = np.frombuffer(entropy.decode(chain.stage.id, chain.stage.args, coded, size), dtype=np.uint8)
    for t in reversed(chain.transforms):
        x = transforms.inverse(t.id, t.arg, x)
    return x.tobytes()


def write_chain(chain: Chain, coded_size: int) -> bytes:
    """The chain's header bytes: stage id and transform count in one varint, the transforms,
    the stage's arguments, the coded size."""
    out = bytearray(uvarint(chain.stage.id << fmt.CHAIN_COUNT_BITS | len(chain.transforms)))
    for t in chain.transforms:
        out += uvarint(t.id) + uvarint(t.arg)
    out += b"".join(uvarint(a) for a in chain.stage.args)
    return bytes(out + uvarint(coded_size))


def read_chain(cur: Cursor, what: str, max_coded: int) -> tuple[Chain, int]:
    """A chain and its coded size from the header; ids and arguments are checked here."""
    head = cur.uvarint(f"{what}: stage and transform count")
    sid, n = head >> fmt.CHAIN_COUNT_BITS, head & ((1 << fmt.CHAIN_COUNT_BITS) - 1)
    ts = []
    for i in range(n):
        tid = cur.uvarint(f"{what}: transform {i} id")
        if tid not in fmt.TRANSFORMS:
            raise transforms.UnknownIdError(f"{what}: unknown transform id {tid}")
        ts.append(Transform(tid, cur.uvarint(f"{what}: transform {i} argument", fmt.MAX_DECODED_BYTES)))
    if sid not in fmt.STAGES:
        raise entropy.UnknownIdError(f"{what}: unknown entropy stage id {sid}; "
                                     f"this reader knows {sorted(fmt.STAGES)}")
    args = tuple(cur.uvarint(f"{what}: {fmt.STAGES[sid]} argument {i}", 1 << 32)
                 for i in range(fmt.STAGE_ARG_COUNTS[sid]))
    entropy.check_stage_args(sid, args)
    coded = cur.uvarint(f"{what}: coded size", max_coded)
    return Chain(tuple(ts), Stage(sid, args)), coded
