"""The chooser: per section, try transform and stage combinations and keep the smallest.

Tensors sharing a quantizer are grouped; each group is coded jointly or, when
that is smaller counting header bytes, one section per tensor. Everything is
deterministic (candidates in a fixed order, ties to the earlier one), so the
writer's bytes depend only on the content. The choice is written into the
archive; the reader never searches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive import grouped, streams
from tac_core.archive.chain import Chain, Stage, Transform, encode_stream, write_chain
from tac_core.archive.entropy import lzma_props
from tac_core.archive.errors import ArchiveWriteError
from tac_core.archive.quantizers import Quantized
from tac_core.archive.schema import Architecture, TensorSchema
from tac_core.archive.writer import SectionPlan, section_streams

ALL_STAGES = ("store", "zstd", "lzma", "brotli", "range_static", "range_adaptive", "range_grouped")
CONTEST_SAFE_STAGES = ("store", "lzma", "brotli", "range_static", "range_adaptive", "range_grouped")
_SIGNED = {"int8_sym"}
_GROUPED_KINDS = {"int8_sym": grouped.KIND_INT8, "int8_asym": grouped.KIND_UINT8,
                  "int4_sym": grouped.KIND_INT4, "int4_asym": grouped.KIND_UINT4}


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class ChooserOptions:
    """What the chooser may try.

    ``stages``: stage names allowed (None = all available); ``contest_safe``
    drops zstd, which the contest runtime lacks. ``effort`` "max" tries more
    LZMA and range-coder settings and transposes; "fast" fewer. ``split``
    also tries one section per tensor. ``zstd_dictionaries``: registered
    dictionary ids to try.
    """

    stages: tuple[str, ...] | None = None
    contest_safe: bool = False
    effort: str = "max"
    split: bool = True
    zstd_dictionaries: tuple[int, ...] = ()
    zstd_level: int = 19
    chains: Mapping[str, Chain] | None = None

    def allowed(self) -> tuple[str, ...]:
        names = self.stages if self.stages is not None else ALL_STAGES
        unknown = [n for n in names if n not in fmt.STAGE_IDS]
        if unknown:
            raise ArchiveWriteError(f"unknown stages {unknown}; known: {', '.join(fmt.STAGE_IDS)}")
        if self.effort not in ("fast", "max"):
            raise ArchiveWriteError(f"effort must be 'fast' or 'max', got {self.effort!r}")
        if self.contest_safe or not zstd_available():
            names = tuple(n for n in names if n != "zstd")
        return tuple(n for n in names) or ("store",)


def _stages(size: int, options: ChooserOptions) -> list[Stage]:
    allowed = options.allowed()
    dict_log2 = min(max(fmt.LZMA_DICT_LOG2_RANGE[0], math.ceil(math.log2(max(size, 1)))),
                    fmt.LZMA_DICT_LOG2_RANGE[1])
    out = []
    if "store" in allowed:
        out.append(Stage(fmt.S_STORE))
    if size == 0:
        return out or [Stage(fmt.S_STORE)]
    if "brotli" in allowed:
        out.append(Stage(fmt.S_BROTLI))
    if "lzma" in allowed:
        lcs = (0, 3) if options.effort == "max" else (0,)
        out += [Stage(fmt.S_LZMA, (1, lzma_props(lc, 0, 0), dict_log2, 0)) for lc in lcs]
    if "zstd" in allowed:
        out += [Stage(fmt.S_ZSTD, (d,)) for d in (0, *options.zstd_dictionaries)]
    if "range_static" in allowed:
        out.append(Stage(fmt.S_RANGE_STATIC))
    if "range_adaptive" in allowed:
        base = min(max(fmt.RANGE_BLOCK_LOG2_RANGE[0], int(math.log2(max(size, 1))) - 6), 14)
        logs = (base, base + 2) if options.effort == "max" else (base,)
        out += [Stage(fmt.S_RANGE_ADAPTIVE, (k,)) for k in logs]
    return out


def _transforms(size: int, width: int, signed: bool, shape: tuple[int, ...] | None,
                options: ChooserOptions) -> list[tuple[Transform, ...]]:
    out: list[tuple[Transform, ...]] = [()]
    if signed and size % width == 0:
        out.append((Transform(fmt.T_ZIGZAG, width),))
    if width > 1 and size % width == 0:
        out.append((Transform(fmt.T_SPLIT, width),))
    if shape is not None and len(shape) >= 2 and width == 1 and shape[0] > 1:
        row = size // shape[0]
        if 0 < row < size:
            out.append((Transform(fmt.T_DELTA, row), Transform(fmt.T_ZIGZAG, 1)))
            if options.effort == "max" and size % shape[0] == 0:   # packed 4-bit codes may not fill whole rows
                out.append((Transform(fmt.T_TRANSPOSE, shape[0]),))
    return out


def best_chain(raw: bytes, width: int, signed: bool, shape: tuple[int, ...] | None,
               options: ChooserOptions) -> tuple[Chain, bytes]:
    """The chain giving the fewest coded bytes for ``raw`` (ties: the earlier candidate)."""
    best: tuple[Chain, bytes] | None = None
    for ts in _transforms(len(raw), width, signed, shape, options):
        for stage in _stages(len(raw), options):
            if ts and stage.id == fmt.S_STORE:
                continue
            chain = Chain(ts, stage)
            coded = encode_stream(raw, chain, options.zstd_level)
            if best is None or len(coded) + len(write_chain(chain, len(coded))) < \
                    len(best[1]) + len(write_chain(best[0], len(best[1]))):
                best = (chain, coded)
    return best


def _grouped_kind(spec) -> int | None:
    """The ``range_grouped`` symbol kind for a quantizer's codes, or None if it has none."""
    if spec.kind == "raw":
        dt = np.dtype(spec.dtype) if spec.dtype is not None else None
        if dt is None or dt.itemsize != 1:
            return None
        return {"i": grouped.KIND_INT8, "u": grouped.KIND_UINT8}.get(dt.kind)
    return _GROUPED_KINDS.get(spec.kind)


def _layouts(tensors: Mapping[str, Quantized], names: tuple[str, ...], kind: int):
    """Candidate group layouts: per tensor, and per row along axis 0 (output channel)."""
    spec = tensors[names[0]].spec
    per_tensor, per_row = [], []
    for n in names:
        shape = tensors[n].shape
        count = grouped.symbol_count(streams.codes_size(spec, shape), kind)
        per_tensor.append(count)
        rows = shape[0] if len(shape) >= 2 and shape[0] > 1 else 1
        row = streams.element_count(shape) // rows if rows > 1 else count
        per_row += [row] * (rows - 1) + [count - row * (rows - 1)]
    out = [grouped.merge_runs(per_tensor)]
    if len(per_row) > len(per_tensor):
        out.append(grouped.merge_runs(per_row))
    if len(names) > 1:
        out.insert(0, grouped.merge_runs([sum(per_tensor)]))
    return [runs for runs in out if sum(g for g, _ in runs) <= fmt.MAX_GROUPED_GROUPS
            and len(runs) <= fmt.MAX_GROUPED_RUNS]


def _grouped_candidates(tensors: Mapping[str, Quantized], names: tuple[str, ...], raw: bytes):
    """(chain, layout) pairs for ``range_grouped``: the layouts above, and per column of a 2-D byte tensor."""
    kind = _grouped_kind(tensors[names[0]].spec)
    if kind is None or not raw:
        return []
    out = []
    for family in grouped.FAMILIES:
        stage = Stage(fmt.S_RANGE_GROUPED, (kind, family))
        out += [(Chain((), stage), runs) for runs in _layouts(tensors, names, kind)]
        shape = tensors[names[0]].shape
        if len(names) == 1 and len(shape) == 2 and shape[0] > 1 and kind in (grouped.KIND_INT8, grouped.KIND_UINT8):
            out.append((Chain((Transform(fmt.T_TRANSPOSE, shape[0]),), stage), ((shape[1], shape[0]),)))
    return out


def _cost(chain: Chain, coded: bytes) -> int:
    return len(coded) + len(write_chain(chain, len(coded)))


def _section(tensors: Mapping[str, Quantized], names: tuple[str, ...], options: ChooserOptions):
    spec = tensors[names[0]].spec
    codes_raw, params_raw = section_streams(tensors, names)
    shape = tensors[names[0]].shape if len(names) == 1 else None
    width = streams.code_element_width(spec)
    signed = spec.kind in _SIGNED or (spec.kind == "raw" and spec.dtype[1] == "i")
    codes_chain, codes = best_chain(codes_raw, width, signed, shape, options)
    if "range_grouped" in options.allowed():
        for chain, runs in _grouped_candidates(tensors, names, codes_raw):
            coded = encode_stream(codes_raw, chain, groups=runs)
            if _cost(chain, coded) < _cost(codes_chain, codes):
                codes_chain, codes = chain, coded
    params_chain, params = None, b""
    if spec.has_params:
        params_chain, params = best_chain(params_raw, 2 if spec.kind.endswith("_sym") or
                                          spec.kind == "fp4_e2m1" else 1, False, None, options)
    cost = len(codes) + len(params) + len(write_chain(codes_chain, len(codes)))
    if params_chain is not None:
        cost += len(write_chain(params_chain, len(params)))
    return SectionPlan(names, codes_chain, params_chain), (codes, params), cost


def _fixed_section(tensors: Mapping[str, Quantized], name: str, chain: Chain, options: ChooserOptions):
    """A one-tensor section whose codes chain the caller fixed (parameters still chosen)."""
    spec = tensors[name].spec
    codes_raw, params_raw = section_streams(tensors, (name,))
    codes = encode_stream(codes_raw, chain, options.zstd_level)
    params_chain, params = None, b""
    if spec.has_params:
        params_chain, params = best_chain(params_raw, 2 if spec.kind.endswith("_sym") or
                                          spec.kind == "fp4_e2m1" else 1, False, None, options)
    return SectionPlan((name,), chain, params_chain), (codes, params)


def choose_sections(tensors: Mapping[str, Quantized], *, schema: TensorSchema | None = None,
                    options: ChooserOptions | None = None):
    """``(plan, coded)``: sections in canonical order and their coded streams, keyed by names."""
    options = options or ChooserOptions()
    options.allowed()
    key = schema.position if schema is not None else (lambda n: n.encode("utf-8"))
    fixed = dict(options.chains or {})
    unknown = sorted(set(fixed) - set(tensors))
    if unknown:
        raise ArchiveWriteError(f"chains are given for tensors that were not: {', '.join(unknown[:5])}")
    plan, coded = [], {}
    for name in sorted(fixed, key=key):
        sec, streams_ = _fixed_section(tensors, name, fixed[name], options)
        plan.append(sec)
        coded[sec.names] = streams_
    groups: dict = {}
    for name in sorted(tensors, key=key):
        if name not in fixed:
            groups.setdefault(tensors[name].spec, []).append(name)
    per_ref = 2 if schema is not None else 0
    for names in sorted(groups.values(), key=lambda ns: key(ns[0])):
        joint = _section(tensors, tuple(names), options)
        choice = [joint]
        if options.split and len(names) > 1:
            parts = [_section(tensors, (n,), options) for n in names]
            ref_cost = per_ref * len(parts) if schema is not None else 2 * len(parts)
            if sum(p[2] for p in parts) + ref_cost < joint[2]:
                choice = parts
        for sec, streams_, _ in choice:
            plan.append(sec)
            coded[sec.names] = streams_
    plan.sort(key=lambda s: key(s.names[0]))
    return plan, coded


def choose_plan(tensors: Mapping[str, Quantized], *, architecture: Architecture | None = None,
                schema: TensorSchema | None = None, options: ChooserOptions | None = None) -> list[SectionPlan]:
    """The chosen sections (``choose_sections`` without the coded bytes)."""
    return choose_sections(tensors, schema=schema, options=options)[0]
