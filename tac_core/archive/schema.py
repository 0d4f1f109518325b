"""Architectures and tensor schemas: what lets an archive name its tensors by position.

An ``Architecture`` is a registered id plus a small dict of integer
parameters. A ``TensorSchema`` (registered under an architecture id) lists
tensor names and shapes in a fixed order, either as data (``entries``;
``None`` marks a free dimension whose value the archive carries) or computed
from the architecture's parameters (``layout``), and may fix the order of
those parameters (``params``) so that a header carries their values alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from tac_core.archive import format as fmt
from tac_core.archive.errors import ArchiveWriteError, UnknownIdError
from tac_core.errors import TacError


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


Layout = Callable[[Mapping[str, int]], Sequence[tuple[str, Sequence[int]]]]


@dataclass(frozen=True)
class TensorSchema:
    """The tensor layout of a registered architecture id.

    ``entries`` is a fixed layout; ``layout``, when given, computes the entries
    from the architecture's parameters instead (raising ``ValueError`` or a
    ``TacError`` for parameters it does not accept). ``params`` names the
    architecture parameters in wire order: a header whose parameters are the
    first k of them carries no names, and only the values that differ from
    ``defaults``.
    """

    arch_id: int
    entries: tuple[tuple[str, tuple[int | None, ...]], ...] = ()
    params: tuple[str, ...] = ()
    layout: Layout | None = None
    defaults: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self):
        names = [n for n, _ in self.entries]
        if len(set(names)) != len(names):
            raise ArchiveWriteError(f"schema {self.arch_id} lists a tensor name twice")
        if len(names) > fmt.MAX_TENSORS:
            raise ArchiveWriteError(f"schema {self.arch_id} has more than {fmt.MAX_TENSORS} tensors")
        if len(set(self.params)) != len(self.params) or len(self.params) > fmt.MAX_ARCH_PARAMS:
            raise ArchiveWriteError(f"schema {self.arch_id}: parameter names must be distinct, "
                                    f"at most {fmt.MAX_ARCH_PARAMS}")
        object.__setattr__(self, "defaults", dict(self.defaults))
        if set(self.defaults) - set(self.params):
            raise ArchiveWriteError(f"schema {self.arch_id}: defaults for parameters it does not order")
        if self.layout is not None and self.entries:
            raise ArchiveWriteError(f"schema {self.arch_id} has both fixed entries and a layout")

    def bind(self, params: Mapping[str, int], error: type[Exception] = ArchiveWriteError) -> "TensorSchema":
        """The fixed schema of an archive whose architecture has ``params`` (this one when it is
        fixed already); ``error`` when the layout does not accept the parameters."""
        if self.layout is None:
            return self
        try:
            entries = tuple((str(name), tuple(int(d) for d in shape)) for name, shape in self.layout(dict(params)))
        except (ValueError, TypeError, KeyError, ArithmeticError, TacError) as exc:
            raise error(f"the parameters do not describe architecture {self.arch_id}: {exc}") from None
        if len(entries) > fmt.MAX_TENSORS or any(d < 0 for _, shape in entries for d in shape):
            raise error(f"the parameters of architecture {self.arch_id} give an impossible layout")
        return TensorSchema(self.arch_id, entries, self.params, defaults=self.defaults)

    def params_by_position(self, params: Mapping[str, int]) -> bool:
        """True when ``params`` are exactly the first ``len(params)`` of the schema's parameter names."""
        return bool(params) and set(params) == set(self.params[:len(params)])

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
