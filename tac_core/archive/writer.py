"""The archive writer: quantised tensors plus a section plan -> canonical container bytes.

``encode_archive`` follows a given plan exactly (sections and chains);
``write_archive`` lets the chooser make the plan. Either way the bytes depend
only on the content, never on the order tensors were given in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive import streams
from tac_core.archive.chain import Chain, encode_stream, write_chain
from tac_core.archive.errors import ArchiveWriteError
from tac_core.archive.quantizers import QuantSpec, Quantized, quantize
from tac_core.archive.schema import Architecture, TensorSchema
from tac_core.archive.varint import svarint, text, uvarint


@dataclass(frozen=True)
class SectionPlan:
    """Tensors coded together: their names, the codes chain and the parameter chain (or None)."""

    names: tuple[str, ...]
    codes: Chain
    params: Chain | None = None


def as_quantized(tensors: Mapping[str, "Quantized | np.ndarray"]) -> dict[str, Quantized]:
    """Arrays become lossless ``raw`` tensors; ``Quantized`` values pass through, checked."""
    out = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise ArchiveWriteError(f"tensor names must be strings, got {name!r}")
        q = value if isinstance(value, Quantized) else quantize(np.asarray(value), QuantSpec("raw"))
        streams.check_quantized(name, q)
        out[name] = q
    return out


def _sort_key(schema: TensorSchema | None):
    if schema is None:
        return lambda name: name.encode("utf-8")
    return schema.position


def section_streams(tensors: Mapping[str, Quantized], names: Sequence[str]) -> tuple[bytes, bytes]:
    """The raw codes stream and parameter stream of a section (tensors in the given order)."""
    codes = b"".join(streams.codes_to_bytes(tensors[n]) for n in names)
    params = b"".join(streams.params_to_bytes(tensors[n]) for n in names)
    return codes, params


def _check_plan(tensors: Mapping[str, Quantized], plan: Sequence[SectionPlan], key) -> list[SectionPlan]:
    seen: set[str] = set()
    ordered = []
    for sec in plan:
        if not sec.names:
            raise ArchiveWriteError("a section must hold at least one tensor")
        names = tuple(sorted(sec.names, key=key))
        for n in names:
            if n not in tensors:
                raise ArchiveWriteError(f"section names tensor {n!r}, which was not given")
            if n in seen:
                raise ArchiveWriteError(f"tensor {n!r} is in two sections")
            seen.add(n)
        specs = {tensors[n].spec for n in names}
        if len(specs) != 1:
            raise ArchiveWriteError(f"tensors {', '.join(names)} use different quantizers; "
                                    f"a section holds one quantizer")
        spec = specs.pop()
        if (sec.params is None) == spec.has_params:
            raise ArchiveWriteError(f"section {names[0]!r}: a parameter chain is needed exactly when "
                                    f"the quantizer ({spec.kind}) has parameters")
        ordered.append(SectionPlan(names, sec.codes, sec.params))
    missing = sorted(set(tensors) - seen)
    if missing:
        raise ArchiveWriteError(f"tensors not in any section: {', '.join(missing[:5])}")
    if len(ordered) > fmt.MAX_SECTIONS or len(seen) > fmt.MAX_TENSORS:
        raise ArchiveWriteError(f"at most {fmt.MAX_SECTIONS} sections and {fmt.MAX_TENSORS} tensors")
    return sorted(ordered, key=lambda s: key(s.names[0]))


def _positions_runs(positions: list[int]) -> bytes:
    runs: list[list[int]] = []
    for p in positions:
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    out, end = bytearray(), 0
    for i, (start, count) in enumerate(runs):
        out += uvarint(start - end) + uvarint(count << 1 | (i + 1 < len(runs)))
        end = start + count
    return bytes(out)


def _bound(schema: TensorSchema | None, architecture: Architecture,
           tensors: Mapping[str, Quantized]) -> TensorSchema | None:
    """``schema`` fixed for ``architecture``'s parameters, every tensor checked against it."""
    if schema is None:
        return None
    if schema.arch_id != architecture.id:
        raise ArchiveWriteError(f"schema is for architecture {schema.arch_id}, "
                                f"the archive's architecture is {architecture.id}")
    schema = schema.bind(architecture.params)
    schema.free_values({n: q.shape for n, q in tensors.items()})
    for n in tensors:
        schema.position(n)
    return schema


def encode_header(architecture: Architecture, schema: TensorSchema | None,
                  tensors: Mapping[str, Quantized], plan: Sequence[SectionPlan],
                  coded_sizes: Sequence[tuple[int, int | None]]) -> bytes:
    """Magic, version and section table for sections already in canonical order."""
    out = bytearray(fmt.MAGIC + bytes([fmt.VERSION]))
    positional = schema is not None and schema.params_by_position(architecture.params)
    out += uvarint((fmt.FLAG_BY_POSITION if schema is not None else 0)
                   | (fmt.FLAG_PARAMS_BY_POSITION if positional else 0))
    out += uvarint(architecture.id) + uvarint(len(architecture.params))
    if positional:
        names = schema.params[:len(architecture.params)]
        given = [k for k in names if schema.defaults.get(k) != architecture.params[k]]
        out += uvarint(sum(1 << i for i, k in enumerate(names) if k in given))
        out += b"".join(svarint(architecture.params[k]) for k in given)
    else:
        for k, v in architecture.params.items():
            out += text(k) + svarint(v)
    if schema is not None and schema.free_dims:
        free = schema.free_values({n: q.shape for n, q in tensors.items()})
        out += uvarint(len(free)) + b"".join(uvarint(v) for v in free)
    out += uvarint(len(plan))
    for sec, (codes_size, params_size) in zip(plan, coded_sizes):
        spec = tensors[sec.names[0]].spec
        out += uvarint(spec.quantizer_id) + uvarint(spec.wire_arg())
        if schema is not None:
            out += _positions_runs([schema.position(n) for n in sec.names])
        else:
            out += uvarint(len(sec.names))
            for n in sec.names:
                shape = tensors[n].shape
                out += text(n) + uvarint(len(shape)) + b"".join(uvarint(d) for d in shape)
        out += write_chain(sec.codes, codes_size)
        if sec.params is not None:
            out += write_chain(sec.params, params_size)
    return bytes(out)


def encode_archive(tensors: Mapping[str, "Quantized | np.ndarray"], plan: Sequence[SectionPlan], *,
                   architecture: Architecture | None = None, schema: TensorSchema | None = None,
                   level: int | None = None, coded: Mapping | None = None) -> bytes:
    """Container bytes for ``tensors`` laid out exactly as ``plan`` says.

    ``coded`` may hold streams already coded by the chooser (keyed by a
    section's names) so they are not coded twice.
    """
    architecture = architecture or Architecture()
    tensors = as_quantized(tensors)
    schema = _bound(schema, architecture, tensors)
    ordered = _check_plan(tensors, plan, _sort_key(schema))
    payloads, sizes = [], []
    for sec in ordered:
        if coded is not None and sec.names in coded:
            codes, params = coded[sec.names]
        else:
            codes_raw, params_raw = section_streams(tensors, sec.names)
            codes = encode_stream(codes_raw, sec.codes, level)
            params = encode_stream(params_raw, sec.params, level) if sec.params is not None else b""
        payloads += [codes, params]
        sizes.append((len(codes), len(params) if sec.params is not None else None))
    return encode_header(architecture, schema, tensors, ordered, sizes) + b"".join(payloads)


def write_archive(tensors: Mapping[str, "Quantized | np.ndarray"], *, architecture: Architecture | None = None,
                  schema: TensorSchema | None = None, options=None) -> bytes:
    """The smallest canonical container the chooser finds for ``tensors``.

    Arrays are stored losslessly (``raw``); quantise first with ``quantize``
    to store them smaller. ``options`` is a ``ChooserOptions``.
    """
    from tac_core.archive.chooser import choose_sections

    architecture = architecture or Architecture()
    quantized = as_quantized(tensors)
    schema = _bound(schema, architecture, quantized)
    plan, coded = choose_sections(quantized, schema=schema, options=options)
    level = options.zstd_level if options is not None else None
    return encode_archive(quantized, plan, architecture=architecture, schema=schema, level=level, coded=coded)
