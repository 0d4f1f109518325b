"""The ``range_grouped`` stage (docs section 5.1): one parametric model per group of symbols.

Quantised weights differ in spread from channel to channel and from tensor to
tensor; a single histogram for a whole section averages them. Here the stream
is cut into groups (a run-length layout, e.g. one group per output channel)
and each group gets a Laplace or Gaussian model fixed by one scale byte (and a
centre byte for unsigned symbols). Model tables come from exact integer
recurrences, so every reader builds bit-identical tables.

    bytes --(kind)--> symbols --(layout)--> groups --(level, centre)--> models --> range coder
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive.errors import ArchiveLimitError, MalformedArchiveError, StageError
from tac_core.archive.varint import Cursor, uvarint

KIND_INT8, KIND_UINT8, KIND_INT4, KIND_UINT4 = 1, 2, 3, 4
FAMILY_LAPLACE, FAMILY_GAUSSIAN = 1, 2
KINDS = {KIND_INT8: (-128, 256, False), KIND_UINT8: (0, 256, True),
         KIND_INT4: (-8, 16, False), KIND_UINT4: (0, 16, True)}  # first symbol, size, has centres
FAMILIES = (FAMILY_LAPLACE, FAMILY_GAUSSIAN)
LEVELS = 256
_PEAK = 1 << 20
_MAX_GROUP_LENGTH = 1 << 29


def check_args(args: tuple[int, ...]) -> None:
    """Refuse an unknown symbol kind or model family."""
    kind, family = args
    if kind not in KINDS:
        raise MalformedArchiveError(f"range_grouped symbol kind must be in 1..4, got {kind}")
    if family not in FAMILIES:
        raise MalformedArchiveError(f"range_grouped model family must be 1 or 2, got {family}")


@lru_cache(maxsize=None)
def _bank(family: int) -> np.ndarray:
    """Integer frequencies h(level, distance) for all 256 levels and distances 0..255 (exact)."""
    q = [(1 << 32) - 1]
    while len(q) < LEVELS:
        q.append(q[-1] - max(1, q[-1] >> 4))
    r = (1 << 32) - np.array(q, dtype=np.uint64)
    h = np.zeros((LEVELS, 256), dtype=np.uint64)
    h[:, 0] = _PEAK
    t = r.copy()
    for d in range(255):
        h[:, d + 1] = (h[:, d] * t) >> np.uint64(32)
        if family == FAMILY_GAUSSIAN:
            t = (((t * r) >> np.uint64(32)) * r) >> np.uint64(32)
    return np.maximum(h, 1).astype(np.float64)


def _table(family: int, kind: int, centre: int) -> np.ndarray:
    """Frequencies over the kind's alphabet (index 0 = first symbol) for every level."""
    first, size, _ = KINDS[kind]
    dist = np.abs(np.arange(first, first + size) - centre)
    return _bank(family)[:, dist]


def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - constriction is a core dependency
        raise StageError("this archive uses range coding, which needs the constriction package") from None
    return constriction


def _symbols(raw: bytes, kind: int) -> np.ndarray:
    """Alphabet indices (0-based) of the stream's symbols."""
    b = np.frombuffer(raw, dtype=np.uint8)
    if kind in (KIND_INT4, KIND_UINT4):
        b = np.stack([b & 0x0F, b >> 4], axis=1).reshape(-1)
    first, size, _ = KINDS[kind]
    # two's complement: shift signed values so the first symbol is index 0
    return ((b.astype(np.int64) - first) % size) if first else b.astype(np.int64)


def _to_bytes(index: np.ndarray, kind: int) -> bytes:
    first, size, _ = KINDS[kind]
    v = (index.astype(np.int64) + first) % size
    if kind in (KIND_INT4, KIND_UINT4):
        v = v[0::2] | (v[1::2] << 4)
    return v.astype(np.uint8).tobytes()


def symbol_count(size: int, kind: int) -> int:
    """Symbols in a stream of ``size`` bytes."""
    return 2 * size if kind in (KIND_INT4, KIND_UINT4) else size


def merge_runs(lengths) -> tuple[tuple[int, int], ...]:
    """Group lengths as (count, length) runs, adjacent equal lengths merged, empty groups dropped."""
    runs: list[list[int]] = []
    for n in lengths:
        if n <= 0:
            continue
        if runs and runs[-1][1] == n:
            runs[-1][0] += 1
        else:
            runs.append([1, int(n)])
    return tuple((g, n) for g, n in runs)


def _lengths(runs) -> np.ndarray:
    return np.repeat([n for _, n in runs], [g for g, _ in runs]).astype(np.int64)


def encode(raw: bytes, args: tuple[int, ...], runs: tuple[tuple[int, int], ...] | None = None) -> bytes:
    """Layout, model bytes and words for ``raw``; ``runs`` defaults to one group of everything."""
    check_args(args)
    kind, family = args
    symbols = _symbols(raw, kind)
    if runs is None:
        runs = ((1, symbols.size),) if symbols.size else ()
    lengths = _lengths(runs)
    if len(runs) > fmt.MAX_GROUPED_RUNS or lengths.size > fmt.MAX_GROUPED_GROUPS or \
            int(lengths.sum()) != symbols.size or (lengths.size and lengths.min() < 1):
        raise StageError(f"range_grouped layout covers {int(lengths.sum())} symbols in {lengths.size} groups, "
                         f"the stream has {symbols.size}")
    _, size, centred = KINDS[kind]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    levels, centres, costs = [], [], {}
    for g in range(lengths.size):
        part = symbols[bounds[g]:bounds[g + 1]]
        centre = int(np.sort(part)[(part.size - 1) // 2]) if centred else 0
        if centre not in costs:
            freq = _table(family, kind, centre)
            costs[centre] = -np.log2(freq / freq.sum(axis=1, keepdims=True))
        levels.append(int(np.argmin(costs[centre] @ np.bincount(part, minlength=size))))
        centres.append(centre)
    head = uvarint(len(runs)) + b"".join(uvarint(g) + uvarint(n) for g, n in runs) + bytes(levels)
    if centred:
        head += bytes(centres)
    c = _constriction()
    encoder = c.stream.queue.RangeEncoder()
    models: dict = {}
    for g in range(lengths.size):
        part = symbols[bounds[g]:bounds[g + 1]].astype(np.int32)
        if part.size:
            encoder.encode(part, _model(c, models, family, kind, levels[g], centres[g]))
    return head + encoder.get_compressed().astype("<u4").tobytes()


def _model(c, cache: dict, family: int, kind: int, level: int, centre: int):
    key = (level, centre)
    if key not in cache:
        cache[key] = c.stream.model.Categorical(np.ascontiguousarray(_table(family, kind, centre)[level]),
                                                   perfect=False)
    return cache[key]


def decode(coded: bytes, size: int, args: tuple[int, ...]) -> bytes:
    """Exactly ``size`` bytes from a ``range_grouped`` stream."""
    check_args(args)
    kind, family = args
    first, alphabet, centred = KINDS[kind]
    total = symbol_count(size, kind)
    cur = Cursor(coded)
    nruns = cur.uvarint("range_grouped run count", fmt.MAX_GROUPED_RUNS)
    if (nruns == 0) != (total == 0):
        raise MalformedArchiveError(f"range_grouped layout has {nruns} runs for {total} symbols")
    runs, groups, covered = [], 0, 0
    for i in range(nruns):
        g = cur.uvarint(f"range_grouped run {i} group count", fmt.MAX_GROUPED_GROUPS)
        n = cur.uvarint(f"range_grouped run {i} group length", _MAX_GROUP_LENGTH)
        if g == 0 or n == 0:
            raise MalformedArchiveError(f"range_grouped run {i} is empty ({g} groups of {n} symbols)")
        groups += g
        covered += g * n
        if groups > fmt.MAX_GROUPED_GROUPS:
            raise ArchiveLimitError(f"range_grouped layout has more than {fmt.MAX_GROUPED_GROUPS} groups")
        runs.append((g, n))
    if covered != total:
        raise MalformedArchiveError(f"range_grouped layout covers {covered} symbols, the stream has {total}")
    levels = np.frombuffer(cur.take(groups, "range_grouped scale levels"), dtype=np.uint8)
    centres = np.zeros(groups, dtype=np.int64)
    if centred:
        centres = np.frombuffer(cur.take(groups, "range_grouped centres"), dtype=np.uint8).astype(np.int64)
        if groups and centres.max() >= alphabet:
            raise MalformedArchiveError(f"range_grouped centre {int(centres.max())} is outside 0..{alphabet - 1}")
    words = bytes(coded[cur.pos:])
    if len(words) % 4:
        raise StageError(f"range_grouped: coded words are {len(words)} bytes, not a multiple of 4")
    if total == 0:
        if words:
            raise StageError("range_grouped: words follow an empty stream")
        return b""
    c = _constriction()
    decoder = c.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
    out = np.empty(total, dtype=np.int64)
    models: dict = {}
    pos = 0
    try:
        for g, n in enumerate(_lengths(runs)):
            model = _model(c, models, family, kind, int(levels[g]), int(centres[g]))
            out[pos:pos + n] = decoder.decode(model, int(n))
            pos += n
    except Exception as exc:  # constriction reports corrupt input with its own exception types
        raise StageError(f"range_grouped: corrupt coded data ({exc})") from None
    if not decoder.maybe_exhausted():
        raise StageError("range_grouped: range-coded data does not end where the declared symbol count does")
    return _to_bytes(out, kind)
