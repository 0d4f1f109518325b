"""The archive reader: container bytes -> quantised and dequantised tensors, or an ``ArchiveError``.

The whole section table is parsed and every declared size checked against
the caps and against the bytes present before any payload is decoded, and
each stage is held to the exact raw size, so hostile input cannot allocate
or decode more than the caps allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive import streams
from tac_core.archive.chain import Chain, decode_stream, read_chain
from tac_core.archive.errors import (ArchiveLimitError, MalformedArchiveError, TruncatedArchiveError,
                                     UnknownIdError)
from tac_core.archive.quantizers import Quantized, channel_count, dequantize, spec_from_wire, QuantSpec
from tac_core.archive.schema import Architecture, TensorSchema, find_schema
from tac_core.archive.varint import Cursor


@dataclass(frozen=True)
class SectionInfo:
    """What one section holds and how it is coded (sizes in bytes)."""

    quant: QuantSpec
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    codes_chain: Chain
    codes_coded: int
    codes_raw: int
    params_chain: Chain | None
    params_coded: int
    params_raw: int


@dataclass
class Archive:
    """A decoded archive.

    ``quantized`` holds each tensor exactly as stored (integer codes, scales,
    zero points); ``tensors`` the dequantised float32 arrays (``raw`` tensors
    in their own dtype), computed once on first use.
    """

    architecture: Architecture
    quantized: dict[str, Quantized]
    sections: list[SectionInfo]
    header_bytes: int
    size: int
    by_position: bool
    _tensors: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def tensors(self) -> dict[str, np.ndarray]:
        if self._tensors is None:
            self._tensors = {n: dequantize(q) for n, q in self.quantized.items()}
        return self._tensors

    @property
    def overhead(self) -> int:
        """Container bytes that are not payload: magic, version and section table."""
        return self.header_bytes


def _read_refs_by_name(cur: Cursor, total: list[int]) -> list[tuple[str, tuple[int, ...]]]:
    n = cur.uvarint("tensor count", fmt.MAX_TENSORS)
    if n == 0:
        raise MalformedArchiveError("a section holds no tensors")
    total[0] += n
    if total[0] > fmt.MAX_TENSORS:
        raise ArchiveLimitError(f"more than {fmt.MAX_TENSORS} tensors in the archive")
    refs = []
    for _ in range(n):
        name = cur.text("tensor name")
        rank = cur.uvarint(f"rank of {name!r}", fmt.MAX_RANK)
        shape, elements = [], 1
        for _ in range(rank):
            d = cur.uvarint(f"dimension of {name!r}", fmt.MAX_TENSOR_ELEMENTS)
            elements *= d
            if elements > fmt.MAX_TENSOR_ELEMENTS:
                raise ArchiveLimitError(f"tensor {name!r} declares more than {fmt.MAX_TENSOR_ELEMENTS} elements")
            shape.append(d)
        refs.append((name, tuple(shape)))
    return refs


def _read_refs_by_position(cur: Cursor, schema: TensorSchema, shapes, total: list[int]):
    refs, end, more, i = [], 0, True, 0
    while more:
        if i == fmt.MAX_RUNS:
            raise ArchiveLimitError(f"a section lists more than {fmt.MAX_RUNS} runs of positions")
        skip = cur.uvarint("run start", len(schema.entries))
        count = cur.uvarint("run length", 2 * len(schema.entries) + 1)
        count, more = count >> 1, bool(count & 1)
        if count == 0 or (i and skip == 0):
            raise MalformedArchiveError("runs must be non-empty and separated (adjacent runs are one run)")
        start = end + skip
        end = start + count
        if end > len(schema.entries):
            raise MalformedArchiveError(f"tensor position {end - 1} is outside the schema "
                                        f"({len(schema.entries)} tensors)")
        total[0] += count
        if total[0] > fmt.MAX_TENSORS:
            raise ArchiveLimitError(f"more than {fmt.MAX_TENSORS} tensors in the archive")
        refs += [(schema.entries[p][0], shapes[p], p) for p in range(start, end)]
        i += 1
    return refs


def _read_params(cur: Cursor, schema: TensorSchema | None) -> dict[str, int]:
    """Architecture parameters by name, or by position in ``schema``'s wire order (then a bit mask
    says which of them differ from the schema's defaults and follow)."""
    count = cur.uvarint("architecture parameter count", fmt.MAX_ARCH_PARAMS)
    if schema is not None:
        if count == 0 or count > len(schema.params):
            raise MalformedArchiveError(f"archive carries {count} parameters by position; the schema "
                                        f"names {len(schema.params)}")
        mask = cur.uvarint("architecture parameter mask")
        if mask >> count:
            raise MalformedArchiveError("the parameter mask marks parameters beyond the count")
        params = {}
        for i, name in enumerate(schema.params[:count]):
            default = schema.defaults.get(name)
            if not mask >> i & 1:
                if default is None:
                    raise MalformedArchiveError(f"architecture parameter {name!r} has no default and is absent")
                params[name] = default
            else:
                params[name] = cur.svarint(f"architecture parameter {name!r}")
                if params[name] == default:
                    raise MalformedArchiveError(f"architecture parameter {name!r} repeats its default "
                                                f"(not canonical)")
        return params
    params, last = {}, None
    for _ in range(count):
        key = cur.text("architecture parameter name")
        if last is not None and key.encode() <= last.encode():
            raise MalformedArchiveError("architecture parameters must be in strictly increasing name order")
        params[key], last = cur.svarint(f"architecture parameter {key!r}"), key
    return params


def parse_header(data: bytes, schemas: Mapping[int, TensorSchema] | None = None):
    """``(architecture, by_position, sections, header_end)``, every field and cap checked."""
    if len(data) > fmt.MAX_CONTAINER_BYTES:
        raise ArchiveLimitError(f"archive is {len(data)} bytes, above the cap of {fmt.MAX_CONTAINER_BYTES}")
    cur = Cursor(data)
    if bytes(cur.take(4, "magic")) != fmt.MAGIC:
        raise MalformedArchiveError("not a tac archive (wrong magic bytes)")
    version = cur.take(1, "version")[0]
    if version != fmt.VERSION:
        raise UnknownIdError(f"archive format version {version}; this reader reads version {fmt.VERSION}")
    flags = cur.uvarint("flags")
    if flags & ~fmt.KNOWN_FLAGS:
        raise UnknownIdError(f"unknown flag bits {flags & ~fmt.KNOWN_FLAGS:#x}")
    by_position = bool(flags & fmt.FLAG_BY_POSITION)
    if flags & fmt.FLAG_PARAMS_BY_POSITION and not by_position:
        raise MalformedArchiveError("parameters by position need tensors by position (flag bit 0)")
    arch_id = cur.uvarint("architecture id")
    schema = find_schema(arch_id, schemas) if by_position else None
    params = _read_params(cur, schema if flags & fmt.FLAG_PARAMS_BY_POSITION else None)
    architecture = Architecture(arch_id, params)
    shapes = None
    if by_position:
        if not flags & fmt.FLAG_PARAMS_BY_POSITION and schema.params_by_position(params):
            raise MalformedArchiveError("architecture parameters are named although the schema orders them "
                                        "(not canonical)")
        schema = schema.bind(params, MalformedArchiveError)
        free = []
        if schema.free_dims:
            n_free = cur.uvarint("free dimension count", fmt.MAX_FREE_DIMS)
            if n_free != schema.free_dims:
                raise MalformedArchiveError(f"archive carries {n_free} free dimensions; the schema of "
                                            f"architecture {arch_id} has {schema.free_dims}")
            free = [cur.uvarint("free dimension", fmt.MAX_TENSOR_ELEMENTS) for _ in range(n_free)]
        shapes = schema.shapes(free)
        for (name, _), shape in zip(schema.entries, shapes):
            if streams.element_count(shape) > fmt.MAX_TENSOR_ELEMENTS:
                raise ArchiveLimitError(f"tensor {name!r} declares more than {fmt.MAX_TENSOR_ELEMENTS} elements")
    n_sections = cur.uvarint("section count", fmt.MAX_SECTIONS)
    if n_sections == 0:
        raise MalformedArchiveError("archive has no sections")
    sections, seen, total, prev_key = [], set(), [0], None
    for s in range(n_sections):
        spec = spec_from_wire(cur.uvarint(f"section {s}: quantizer id"), cur.uvarint(f"section {s}: argument"))
        if by_position:
            refs = _read_refs_by_position(cur, schema, shapes, total)
            keys = [p for _, _, p in refs]
        else:
            refs = _read_refs_by_name(cur, total)
            keys = [n.encode() for n, _ in refs]
        if any(b <= a for a, b in zip(keys, keys[1:])) or (prev_key is not None and keys[0] <= prev_key):
            raise MalformedArchiveError(f"section {s}: tensors must be in strictly increasing order and "
                                        f"sections ordered by their first tensor")
        prev_key = keys[0]
        names = tuple(r[0] for r in refs)
        shapes_s = tuple(r[1] for r in refs)
        for n, shape in zip(names, shapes_s):
            if n in seen:
                raise MalformedArchiveError(f"tensor {n!r} appears twice")
            seen.add(n)
            try:
                channel_count(spec, shape)
            except Exception as exc:
                raise MalformedArchiveError(f"tensor {n!r}: {exc}") from None
        codes_raw = sum(streams.codes_size(spec, sh) for sh in shapes_s)
        params_raw = sum(streams.params_size(spec, sh) for sh in shapes_s) if spec.has_params else 0
        codes_chain, codes_coded = read_chain(cur, f"section {s} codes", len(data))
        params_chain, params_coded = None, 0
        if spec.has_params:
            params_chain, params_coded = read_chain(cur, f"section {s} parameters", len(data))
        sections.append(SectionInfo(spec, names, shapes_s, codes_chain, codes_coded, codes_raw,
                                    params_chain, params_coded, params_raw))
    return architecture, by_position, sections, cur.pos


def read_archive(data: bytes, *, schemas: Mapping[int, TensorSchema] | None = None,
                 max_decoded_bytes: int = fmt.MAX_DECODED_BYTES) -> Archive:
    """Decode a container; any malformed, truncated or oversized input raises ``ArchiveError``."""
    data = bytes(data)
    architecture, by_position, sections, header_end = parse_header(data, schemas)
    decoded = sum(s.codes_raw + s.params_raw for s in sections)
    if decoded > max_decoded_bytes:
        raise ArchiveLimitError(f"archive declares {decoded} decoded bytes, above the cap of {max_decoded_bytes}")
    payload = sum(s.codes_coded + s.params_coded for s in sections)
    have = len(data) - header_end
    if payload > have:
        raise TruncatedArchiveError(f"archive is truncated: its sections declare {payload} payload bytes, "
                                    f"{have} follow the header")
    if payload < have:
        raise MalformedArchiveError(f"archive has {have - payload} trailing bytes after its last payload")
    quantized: dict[str, Quantized] = {}
    pos = header_end
    for sec in sections:
        codes = decode_stream(data[pos:pos + sec.codes_coded], sec.codes_chain, sec.codes_raw)
        pos += sec.codes_coded
        params = b""
        if sec.params_chain is not None:
            params = decode_stream(data[pos:pos + sec.params_coded], sec.params_chain, sec.params_raw)
            pos += sec.params_coded
        c_off = p_off = 0
        for name, shape in zip(sec.names, sec.shapes):
            c_len = streams.codes_size(sec.quant, shape)
            codes_t = streams.codes_from_bytes(sec.quant, shape, codes[c_off:c_off + c_len], name)
            c_off += c_len
            scales = zeros = None
            if sec.quant.has_params:
                p_len = streams.params_size(sec.quant, shape)
                scales, zeros = streams.params_from_bytes(sec.quant, shape, params[p_off:p_off + p_len], name)
                p_off += p_len
            quantized[name] = Quantized(sec.quant, codes_t, scales, zeros)
    return Archive(architecture, quantized, sections, header_end, len(data), by_position)
