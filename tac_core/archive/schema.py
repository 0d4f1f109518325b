"""Architectures and tensor schemas: what lets an archive name its tensors by position.

An ``Architecture`` is a registered id plus a small dict of integer
parameters. A ``TensorSchema`` (registered under an architecture id) lists
tensor names and shapes in a fixed order; ``None`` marks a free dimension
whose value the archive carries (a number of pairs, say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from tac_core.archive import format as fmt
from tac_core.archive.errors import ArchiveWriteError, UnknownIdError


@dataclass(frozen=True)
class Architecture:
    """A renderer architecture: a registered ``id`` (0 = none) and inline integer ``params``."""

    id: int = fmt.ARCH_NONE
    params: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "params", dict(sorted(self.params.items(), key=lambda kv: kv[0].encode())))
        if not 0 <= self.id < 1 << 63:
            raise ArchiveWriteError(f"architecture id must be in [0, 2^63), got {self.id}")
        if len(self.params) > fmt.MAX_ARCH_PARAMS:
            raise ArchiveWriteError(f"at most {fmt.MAX_ARCH_PARAMS} architecture parameters, got {len(self.params)}")
        for k, v in self.params.items():
            if not isinstance(v, int) or isinstance(v, bool) or not -(1 << 63) <= v < (1 << 63):
                raise ArchiveWriteError(f"architecture parameter {k!r} must be a 64-bit integer, got {v!r}")

    @property
    def name(self) -> str:
        if self.id >= fmt.PRIVATE_ARCH_START:
            return f"private #{self.id}"
        return fmt.ARCHITECTURES.get(self.id, f"unregistered #{self.id}")


@dataclass(frozen=True)
class TensorSchema:
    """The fixed tensor layout of a registered architecture id."""

    arch_id: int
    entries: tuple[tuple[str, tuple[int | None, ...]], ...]

    def __post_init__(self):
        names = [n for n, _ in self.entries]
        if len(set(names)) != len(names):
            raise ArchiveWriteError(f"schema {self.arch_id} lists a tensor name twice")
        if len(names) > fmt.MAX_TENSORS:
            raise ArchiveWriteError(f"schema {self.arch_id} has more than {fmt.MAX_TENSORS} tensors")

    @property
    def free_dims(self) -> int:
        return sum(d is None for _, shape in self.entries for d in shape)

    def position(self, name: str) -> int:
        for i, (n, _) in enumerate(self.entries):
            if n == name:
                return i
        raise ArchiveWriteError(f"tensor {name!r} is not in the schema of architecture {self.arch_id}")

    def free_values(self, shapes: Mapping[str, tuple[int, ...]]) -> list[int]:
        """Values of the free dimensions, taken from the tensors present (0 for absent ones)."""
        values = []
        for name, dims in self.entries:
            shape = shapes.get(name)
            if shape is not None and (len(shape) != len(dims)
                                      or any(d is not None and d != s for d, s in zip(dims, shape))):
                raise ArchiveWriteError(f"tensor {name!r} has shape {tuple(shape)}; the schema of "
                                        f"architecture {self.arch_id} says {dims} (None = free)")
            values += [(shape[i] if shape is not None else 0) for i, d in enumerate(dims) if d is None]
        return values

    def shapes(self, free: list[int]) -> list[tuple[int, ...]]:
        """Every entry's shape with the free dimensions filled in from ``free`` (in order)."""
        it = iter(free)
        return [tuple(next(it) if d is None else d for d in dims) for _, dims in self.entries]


_SCHEMAS: dict[int, TensorSchema] = {}


def register_schema(schema: TensorSchema) -> None:
    """Register the tensor layout of an architecture id (a re-registration must be identical)."""
    old = _SCHEMAS.get(schema.arch_id)
    if old is not None and old != schema:
        raise ArchiveWriteError(f"architecture {schema.arch_id} already has a different schema; "
                                f"a changed layout takes a new id")
    _SCHEMAS[schema.arch_id] = schema


def find_schema(arch_id: int, schemas: Mapping[int, TensorSchema] | None = None) -> TensorSchema:
    """The schema of ``arch_id`` from ``schemas`` or the registry; ``UnknownIdError`` if none."""
    schema = (schemas or {}).get(arch_id) or _SCHEMAS.get(arch_id)
    if schema is None:
        raise UnknownIdError(f"the archive names tensors by position in the schema of architecture "
                             f"{arch_id}, which is not registered here (register_schema)")
    return schema
