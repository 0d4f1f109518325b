"""The ``classmap`` and ``classmap2`` stages (docs 5.2, 5.3): lossless coding of segmentation class maps.

A class map is piecewise constant and close to the map before it, so each
pixel is predicted from four already-decoded neighbours and the co-located
pixel of the previous map, and coded with adaptive counts per context. Pixels
are visited coarse to fine (a grid of stride 32, then diagonal and edge
midpoints at strides 16 .. 1), so a whole phase of pixels has its context
known at once and is coded in one vectorised call.

    maps (N,H,W) u1 --per map--> phases: coarse grid, then (D, E1, E2) at strides 16, 8, 4, 2, 1
    phase pixels --(4 known neighbours, previous map)--> context id, candidates c0 c1 c2
    class --> symbol 0/1/2 (= a candidate) or 3 (escape) --(counts of its context)--> range coder
    escaped class --> its rank among the other classes --(escape counts)--> range coder

Version 2 (``classmap2``), at the two finest strides, codes the diagonal midpoints in two
checkerboard halves, the second seeing four pixels of the first, and lets E2 see E1's diagonal
pixels: on the synthetic clip's steered maps about 5% fewer bytes for 20 to 30% more time.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive.errors import MalformedArchiveError, StageError

LEVELS = 5                  # the coarse grid has stride 2**LEVELS
COUNT_LIMIT = 1 << 16       # a context's counts are halved while their total exceeds this
CANDIDATES = 3
_BUCKETS, _PHASES, _PATTERNS, _PREV, _BORDER, _CHANGED, _CLASS = 4, 3, 5, 3, 3, 2, 8
CONTEXTS = _BUCKETS * _PHASES * _PATTERNS * _PREV * _BORDER * _CHANGED * _CLASS
VERSIONS = tuple(sorted(fmt.CLASSMAP_STAGES.values()))  # 1: the classmap stage, 2: classmap2
LATEST = VERSIONS[-1]
_FAR = 5                    # version 2: 0 for no far neighbours, else 1 + min(far neighbours unlike m, 3)
FAR_STRIDE = 2              # version 2 differs from 1 at strides up to this
MIN_BLOCK, MAX_BLOCK = 1 << 6, 1 << 14  # symbols coded between two count updates
PRIOR = 16                  # initial count of symbol 0 (the first candidate); other symbols start at 1
_REMEMBERED = 4             # encode_class_maps keeps this many recent results
_ENCODED: OrderedDict = OrderedDict()


def contexts(version: int) -> int:
    """How many contexts a version's counts have."""
    return CONTEXTS * (_FAR if version == 2 else 1)


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise StageError(f"classmap version must be one of {VERSIONS}, got {version!r}")


def check_args(args: tuple[int, ...]) -> None:
    """Refuse zero or oversize dimensions and a class count outside 2..256."""
    height, width, classes = args
    if height < 1 or width < 1 or height * width > fmt.MAX_TENSOR_ELEMENTS:
        raise MalformedArchiveError(f"classmap maps must be at least 1x1 and at most {fmt.MAX_TENSOR_ELEMENTS} "
                                    f"pixels, got {height}x{width}")
    if not 2 <= classes <= fmt.MAX_CLASSMAP_CLASSES:
        raise MalformedArchiveError(f"classmap classes must be in 2..{fmt.MAX_CLASSMAP_CLASSES}, got {classes}")


@dataclass(frozen=True)
class _Phase:
    """Pixels ``rows x cols`` coded together; ``near`` gives each one's four known neighbours."""

    rows: np.ndarray
    cols: np.ndarray
    bucket: int
    kind: int
    step: int
    near: tuple  # four (row index, col index, row missing, col missing); a missing one takes another's class
    far: tuple = ()  # version 2: four (row index, col index, row inside, col inside); outside ones do not count


def _pick(idx: np.ndarray, step: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """``idx + step`` where inside ``0..limit-1``, else ``idx - step``; and where neither is inside."""
    first, second = idx + step, idx - step
    out = np.where((first >= 0) & (first < limit), first, second)
    bad = (out < 0) | (out >= limit)
    return np.where(bad, 0, out), bad


def _inside(idx: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` clipped into ``0..limit-1`` (for indexing), and where it was inside."""
    return np.clip(idx, 0, limit - 1), (idx >= 0) & (idx < limit)


def _far(offsets, ys: np.ndarray, xs: np.ndarray, height: int, width: int) -> tuple:
    """Version 2's far neighbours of the grid ``ys x xs``: one (rows, cols, row inside, col inside) per offset."""
    out = []
    for dy, dx in offsets:
        (rows, rows_in), (cols, cols_in) = _inside(ys + dy, height), _inside(xs + dx, width)
        out.append((rows, cols, rows_in, cols_in))
    return tuple(out)


@lru_cache(maxsize=16)
def phases(height: int, width: int, version: int = LATEST) -> tuple[_Phase, ...]:
    """Every pixel exactly once: the coarse grid, then D, E1, E2 at each stride from 16 down to 1.

    Version 2, at strides up to ``FAR_STRIDE``, codes D in four grids, its checkerboard halves in
    turn: with ``(i, j)`` a D pixel's index on the D lattice, first ``i``, ``j`` both even, then both
    odd, then ``i`` even ``j`` odd, then ``i`` odd ``j`` even; the second half sees the first's
    pixels ``2s`` away (N, S, W, E), and E2 sees E1's pixels ``s`` away on the diagonals.
    """
    _check_version(version)
    big = 1 << LEVELS
    ys, xs = np.arange(0, height, big), np.arange(0, width, big)
    out = [_Phase(ys, xs, 0, 0, big, ())]
    for level in range(LEVELS - 1, -1, -1):
        s = 1 << level
        bucket = 3 if s == 1 else 2 if s == 2 else 1
        odd_y, odd_x = np.arange(s, height, 2 * s), np.arange(s, width, 2 * s)
        even_y, even_x = np.arange(0, height, 2 * s), np.arange(0, width, 2 * s)
        no = np.zeros(0, bool)
        if odd_y.size and odd_x.size:  # D: corners NW, NE, SW, SE
            grids = [(odd_y, odd_x, False)] if version == 1 or s > FAR_STRIDE else \
                [(odd_y[a::2], odd_x[b::2], second) for a, b, second in
                 ((0, 0, False), (1, 1, False), (0, 1, True), (1, 0, True))]
            for ys, xs, second in grids:
                if not (ys.size and xs.size):
                    continue
                y2, _ = _pick(ys, s, height)
                x2, _ = _pick(xs, s, width)
                near = ((ys - s, xs - s, no, no), (ys - s, x2, no, no), (y2, xs - s, no, no), (y2, x2, no, no))
                far = _far(((-2 * s, 0), (2 * s, 0), (0, -2 * s), (0, 2 * s)), ys, xs, height, width) \
                    if second else ()
                out.append(_Phase(ys, xs, bucket, 0, s, near, far))
        if even_y.size and odd_x.size:  # E1: N, W, E, S; N/S fall back to W/E where no row exists
            up, up_bad = _pick(even_y, -s, height)
            down, down_bad = _pick(even_y, s, height)
            xe, _ = _pick(odd_x, s, width)
            near = ((up, odd_x, up_bad, no), (even_y, odd_x - s, no, no),
                    (even_y, xe, no, no), (down, odd_x, down_bad, no))
            out.append(_Phase(even_y, odd_x, bucket, 1, s, near))
        if odd_y.size and even_x.size:  # E2: N, W, E, S; W/E fall back to N/S where no column exists
            y2, _ = _pick(odd_y, s, height)
            left, left_bad = _pick(even_x, -s, width)
            right, right_bad = _pick(even_x, s, width)
            near = ((odd_y - s, even_x, no, no), (odd_y, left, no, left_bad),
                    (odd_y, right, no, right_bad), (y2, even_x, no, no))
            far = _far(((-s, -s), (-s, s), (s, -s), (s, s)), odd_y, even_x, height, width) \
                if version == 2 and s <= FAR_STRIDE else ()
            out.append(_Phase(odd_y, even_x, bucket, 2, s, near, far))
    return tuple(out)


def _neighbours(phase: _Phase, img: np.ndarray) -> list[np.ndarray]:
    """The four neighbour planes (rows x cols) of ``phase`` in ``img``, fallbacks applied."""
    vals = [img[np.ix_(r, c)] for r, c, _, _ in phase.near]
    if phase.kind == 1 and phase.near[0][2].any():  # N/S missing (height <= stride): use W/E
        bad = phase.near[0][2][:, None]
        vals[0] = np.where(bad, vals[1], vals[0])
    if phase.kind == 1 and phase.near[3][2].any():
        bad = phase.near[3][2][:, None]
        vals[3] = np.where(bad, vals[2], vals[3])
    if phase.kind == 2 and phase.near[1][3].any():  # W/E missing (width <= stride): use N/S
        bad = phase.near[1][3][None, :]
        vals[1] = np.where(bad, vals[0], vals[1])
    if phase.kind == 2 and phase.near[2][3].any():
        bad = phase.near[2][3][None, :]
        vals[2] = np.where(bad, vals[3], vals[2])
    return vals


def border_flags(prev: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Per pixel: 0 if the previous map's pixel equals its 4 neighbours there, 1 if not, 2 with no previous map."""
    if prev is None:
        return np.full(shape, 2, np.uint8)
    p = np.pad(prev, 1, mode="edge")
    c = p[1:-1, 1:-1]
    diff = (c != p[:-2, 1:-1]) | (c != p[2:, 1:-1]) | (c != p[1:-1, :-2]) | (c != p[1:-1, 2:])
    return diff.astype(np.uint8)


SEARCH, MC_BLOCK = 2, 32
SHIFTS = tuple(sorted(((dy, dx) for dy in range(-SEARCH, SEARCH + 1) for dx in range(-SEARCH, SEARCH + 1)),
                      key=lambda d: (abs(d[0]) + abs(d[1]), d[0], d[1])))


def compensate(img: np.ndarray, prev: np.ndarray, step: int) -> np.ndarray:
    """``prev`` moved block by block to match ``img``'s pixels known so far (those on the ``step`` lattice).

    Each ``MC_BLOCK`` square takes the shift in ``SHIFTS`` (the first of the
    smallest) whose moved ``prev`` differs from ``img`` at the fewest lattice
    pixels of the block; outside ``prev`` the nearest edge pixel is used.
    """
    height, width = img.shape
    pad = np.pad(prev, SEARCH, mode="edge")
    known = img[::step, ::step]
    row_starts = np.arange(0, height, MC_BLOCK) // step
    col_starts = np.arange(0, width, MC_BLOCK) // step
    best = np.full((row_starts.size, col_starts.size), np.iinfo(np.int64).max)
    pick = np.zeros(best.shape, np.int64)
    for n, (sy, sx) in enumerate(SHIFTS):
        moved = pad[SEARCH + sy:SEARCH + sy + height:step, SEARCH + sx:SEARCH + sx + width:step]
        miss = moved != known
        cost = np.add.reduceat(np.add.reduceat(miss, row_starts, axis=0, dtype=np.int64), col_starts, axis=1)
        better = cost < best
        best = np.where(better, cost, best)
        pick = np.where(better, n, pick)
    out = np.empty_like(prev)
    for by, y0 in enumerate(range(0, height, MC_BLOCK)):
        for bx, x0 in enumerate(range(0, width, MC_BLOCK)):
            sy, sx = SHIFTS[pick[by, bx]]
            y1, x1 = min(y0 + MC_BLOCK, height), min(x0 + MC_BLOCK, width)
            out[y0:y1, x0:x1] = pad[SEARCH + sy + y0:SEARCH + sy + y1, SEARCH + sx + x0:SEARCH + sx + x1]
    return out


def _context(phase: _Phase, img: np.ndarray, prev: np.ndarray, border: np.ndarray, classes: int, version: int):
    """Context ids and the candidate classes (c0, c1, c2; -1 where absent) of a phase's pixels."""
    ix = np.ix_(phase.rows, phase.cols)
    p = prev[ix].astype(np.int16)
    b = border[ix].astype(np.int32)
    if phase.kind == 0 and not phase.near:  # coarse grid: no spatial neighbours
        m, s2 = p, np.full_like(p, -1)
        pattern = np.zeros(p.shape, np.int32)
        changed = np.zeros(p.shape, np.int32)
    else:
        v = [x.astype(np.int16) for x in _neighbours(phase, img)]
        pv = [x.astype(np.int16) for x in _neighbours(phase, prev)]
        eq = [[v[i] == v[j] for j in range(4)] for i in range(4)]
        cnt = np.stack([sum(eq[i][j].astype(np.int8) for j in range(4)) for i in range(4)])
        k = cnt.max(axis=0)
        first = np.argmax(cnt, axis=0)
        vs = np.stack(v)
        m = np.take_along_axis(vs, first[None], axis=0)[0]
        # second class: most frequent neighbour class other than m, ties to the earlier neighbour
        score = np.where(vs != m, cnt.astype(np.int16) * 8 + (3 - np.arange(4, dtype=np.int16))[:, None, None], -1)
        second = np.argmax(score, axis=0)
        s2 = np.where(k == 4, -1, np.take_along_axis(vs, second[None], axis=0)[0])
        pattern = np.select([k == 4, k == 3, (k == 2) & (cnt.min(axis=0) == 2), k == 2], [0, 1, 2, 3], 4)
        changed = ((v[0] != pv[0]) | (v[1] != pv[1]) | (v[2] != pv[2]) | (v[3] != pv[3])).astype(np.int32)
    rel = np.where(p == m, 0, np.where(p == s2, 1, 2))
    ctx = ((((((phase.bucket * _PHASES + phase.kind) * _PATTERNS + pattern) * _PREV + rel) * _BORDER + b)
            * _CHANGED + changed) * _CLASS + np.minimum(m, _CLASS - 1))
    if version == 2:
        far = np.zeros(ctx.shape, np.int32)
        if phase.far:
            unlike = sum(((img[np.ix_(r, c)] != m) & r_in[:, None] & c_in[None, :]).astype(np.int32)
                         for r, c, r_in, c_in in phase.far)
            far = 1 + np.minimum(unlike, 3)
        ctx = ctx * _FAR + far
    cands = _candidates([m, p, s2], classes)
    return ctx.reshape(-1), [c.reshape(-1) for c in cands]


def _candidates(order: list[np.ndarray], classes: int) -> list[np.ndarray]:
    """The first min(3, classes) distinct classes of ``order`` followed by 0, 1, 2."""
    shape = order[0].shape
    fill = [np.full(shape, c, np.int16) for c in range(CANDIDATES)]
    want = min(CANDIDATES, classes)
    out = [np.full(shape, -1, np.int16) for _ in range(want)]
    taken = np.zeros(shape, np.int8)
    for cand in order + fill:
        new = cand >= 0
        for o in out:
            new &= cand != o
        for slot in range(want):
            put = new & (taken == slot)
            out[slot] = np.where(put, cand, out[slot])
        taken += new
    return out


class _Counts:
    """Adaptive integer counts per context; halved while a context's total exceeds ``COUNT_LIMIT``."""

    def __init__(self, contexts: int, symbols: int):
        self.counts = np.ones((contexts, symbols), np.int64)
        self.counts[:, 0] = PRIOR
        self.totals = self.counts.sum(axis=1)

    def probabilities(self, ctx: np.ndarray) -> np.ndarray:
        return self.counts[ctx].astype(np.float64)

    def update(self, ctx: np.ndarray, symbols: np.ndarray) -> None:
        n_ctx, n_sym = self.counts.shape
        added = np.bincount(ctx * n_sym + symbols)
        self.counts.reshape(-1)[:added.size] += added
        per_ctx = np.bincount(ctx)
        self.totals[:per_ctx.size] += per_ctx
        over = np.flatnonzero(self.totals > COUNT_LIMIT)
        while over.size:
            self.counts[over] = (self.counts[over] + 1) >> 1
            self.totals[over] = self.counts[over].sum(axis=1)
            over = over[self.totals[over] > COUNT_LIMIT]


def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - constriction is a core dependency
        raise StageError("this archive uses range coding, which needs the constriction package") from None
    return constriction


class _Coder:
    """What encoder and decoder share: alphabets, adaptive counts and the walk over phases."""

    def __init__(self, height: int, width: int, classes: int, version: int):
        _check_version(version)
        self.height, self.width, self.classes, self.version = height, width, classes, version
        self.want = min(CANDIDATES, classes)
        self.escape = self.want if classes > self.want else -1
        self.main = _Counts(contexts(version), self.want + (classes > self.want))
        self.rest = classes - self.want  # escaped classes are coded as a rank among these
        self.esc = _Counts(1, max(self.rest, 2))
        self.c = _constriction()
        self.family = self.c.stream.model.Categorical(perfect=False)

    def walk(self, img: np.ndarray, prev: np.ndarray | None):
        """(phase, contexts, candidates) in coding order; the caller fills each phase of ``img`` in turn."""
        ref = prev if prev is not None else np.zeros_like(img)
        border = border_flags(prev, img.shape)
        step = None
        for phase in phases(self.height, self.width, self.version):
            if prev is not None and phase.near and phase.step != step:
                step = phase.step
                ref = compensate(img, prev, 2 * step)
                border = border_flags(ref, img.shape)
            yield phase, *_context(phase, img, ref, border, self.classes, self.version)


def _escape_rank(x: np.ndarray, cands: list[np.ndarray]) -> np.ndarray:
    """The rank of class ``x`` among the classes that are not candidates."""
    return x - sum((c < x).astype(np.int64) for c in cands)


def _escape_class(rank: np.ndarray, cands: list[np.ndarray]) -> np.ndarray:
    x = rank.astype(np.int64)
    for e in np.sort(np.stack(cands), axis=0):
        x = x + (x >= e)
    return x


def blocks(n: int):
    """Slices of a phase's ``n`` symbols: 64, 128, ... doubling up to ``MAX_BLOCK``; counts adapt between them."""
    start, size = 0, MIN_BLOCK
    while start < n:
        yield slice(start, min(start + size, n))
        start += size
        size = min(2 * size, MAX_BLOCK)


def encode_class_maps(maps: np.ndarray, classes: int, version: int = LATEST) -> bytes:
    """Range-coder words (little-endian u32) for ``maps`` (N, H, W) uint8 with values below ``classes``.

    ``version`` 1 is the ``classmap`` stage's coding, 2 (the default) ``classmap2``'s.

    Coding is slow (seconds for a hundred 384x512 maps) and an encoder measures the same maps many
    times, so the last few results are remembered, keyed by the sha256 of the maps' bytes."""
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.dtype != np.uint8:
        raise StageError(f"class maps must be a uint8 array (count, height, width), got {maps.dtype} {maps.shape}")
    count, height, width = maps.shape
    check_args((height, width, classes))
    _check_version(version)
    key = (hashlib.sha256(np.ascontiguousarray(maps).data).hexdigest(), maps.shape, classes, version)
    if key in _ENCODED:
        _ENCODED.move_to_end(key)
        return _ENCODED[key]
    if maps.size and int(maps.max()) >= classes:
        raise StageError(f"a class map holds class {int(maps.max())}, but classes is {classes}")
    out = _encode(maps, classes, version)
    _ENCODED[key] = out
    while len(_ENCODED) > _REMEMBERED:
        _ENCODED.popitem(last=False)
    return out


def _encode(maps: np.ndarray, classes: int, version: int) -> bytes:
    count, height, width = maps.shape
    coder = _Coder(height, width, classes, version)
    encoder = coder.c.stream.queue.RangeEncoder()
    for i in range(count):
        img = maps[i]
        for phase, ctx, cands in coder.walk(img, maps[i - 1] if i else None):
            x = img[np.ix_(phase.rows, phase.cols)].reshape(-1).astype(np.int64)
            sym = np.full(x.shape, coder.escape, np.int64)
            for slot in range(coder.want - 1, -1, -1):
                sym[x == cands[slot]] = slot
            for part in blocks(sym.size):
                c, s = ctx[part], sym[part]
                encoder.encode(s.astype(np.int32), coder.family, coder.main.probabilities(c))
                coder.main.update(c, s)
                esc = s == coder.escape
                if coder.rest > 1 and esc.any():
                    rank = _escape_rank(x[part][esc], [cd[part][esc] for cd in cands])
                    zero = np.zeros(rank.size, np.int64)
                    encoder.encode(rank.astype(np.int32), coder.family, coder.esc.probabilities(zero))
                    coder.esc.update(zero, rank)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_class_maps(data: bytes, count: int, height: int, width: int, classes: int,
                      version: int = LATEST) -> np.ndarray:
    """``count`` maps (N, H, W) uint8 from ``encode_class_maps``'s bytes of that ``version``; ``StageError`` if they
    do not fit."""
    check_args((height, width, classes))
    _check_version(version)
    if count < 0 or count * height * width > fmt.MAX_DECODED_BYTES:
        raise MalformedArchiveError(f"classmap: {count} maps of {height}x{width} exceed the cap of "
                                    f"{fmt.MAX_DECODED_BYTES} decoded bytes")
    data = bytes(data)
    if len(data) % 4:
        raise StageError(f"classmap: coded words are {len(data)} bytes, not a multiple of 4")
    out = np.zeros((count, height, width), np.uint8)
    if count == 0:
        if data:
            raise StageError("classmap: words follow an empty stream")
        return out
    coder = _Coder(height, width, classes, version)
    decoder = coder.c.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    try:
        for i in range(count):
            img = out[i]
            for phase, ctx, cands in coder.walk(img, out[i - 1] if i else None):
                x = np.empty(ctx.size, np.int64)
                for part in blocks(ctx.size):
                    c = ctx[part]
                    sym = np.asarray(decoder.decode(coder.family, coder.main.probabilities(c)), np.int64)
                    coder.main.update(c, sym)
                    xs = np.zeros(sym.size, np.int64)
                    for slot in range(coder.want):
                        xs = np.where(sym == slot, cands[slot][part], xs)
                    esc = sym == coder.escape
                    if esc.any():
                        rank = np.zeros(int(esc.sum()), np.int64)
                        if coder.rest > 1:
                            zero = rank.copy()
                            rank = np.asarray(decoder.decode(coder.family, coder.esc.probabilities(zero)), np.int64)
                            coder.esc.update(zero, rank)
                        xs[esc] = _escape_class(rank, [cd[part][esc] for cd in cands])
                    x[part] = xs
                img[np.ix_(phase.rows, phase.cols)] = x.reshape(phase.rows.size, phase.cols.size)
    except Exception as exc:  # constriction reports corrupt input with its own exception types
        raise StageError(f"classmap: corrupt coded data ({exc})") from None
    if not decoder.maybe_exhausted():
        raise StageError("classmap: range-coded data does not end where the declared maps do")
    return out


def _count(size: int, args: tuple[int, ...]) -> int:
    height, width, _ = args
    if size % (height * width):
        raise MalformedArchiveError(f"classmap: a stream of {size} bytes is not a whole number of "
                                    f"{height}x{width} maps")
    return size // (height * width)


def encode_stream(raw: bytes, args: tuple[int, ...], version: int) -> bytes:
    """The stage's coded bytes for a raw stream of whole (height, width) maps."""
    check_args(args)
    height, width, classes = args
    maps = np.frombuffer(raw, dtype=np.uint8).reshape(_count(len(raw), args), height, width)
    return encode_class_maps(maps, classes, version)


def decode_stream(coded: bytes, size: int, args: tuple[int, ...], version: int) -> bytes:
    """Exactly ``size`` bytes from a ``classmap`` (version 1) or ``classmap2`` (version 2) stream."""
    check_args(args)
    return decode_class_maps(coded, _count(size, args), *args, version=version).tobytes()


def simplify_class_maps(maps: np.ndarray, cost: np.ndarray | None = None,
                        max_flip_fraction: float = 0.01) -> np.ndarray:
    """Near-lossless: ``maps`` with isolated specks set to their surroundings' class, cheapest first.

    A pixel is a speck when at least 3 of its 4 neighbours (2 of 2 or 3 at a
    border) share one class other than its own, and the previous map (as
    given) does not have the pixel's class there either. At most
    ``max_flip_fraction`` of each map's pixels change, those with the lowest
    ``cost`` (same shape as ``maps``; None: uniform, raster order) first.
    The result is then coded losslessly.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.dtype != np.uint8:
        raise StageError(f"class maps must be a uint8 array (count, height, width), got {maps.dtype} {maps.shape}")
    if cost is not None and np.shape(cost) != maps.shape:
        raise StageError(f"cost must have the maps' shape {maps.shape}, got {np.shape(cost)}")
    if not 0 <= max_flip_fraction <= 1:
        raise StageError(f"max_flip_fraction must be in 0..1, got {max_flip_fraction}")
    out = maps.copy()
    budget = int(max_flip_fraction * maps.shape[1] * maps.shape[2])
    for i in range(maps.shape[0]):
        target, speck = speck_fill(out[i])
        if i:
            speck &= maps[i - 1] != maps[i]
        idx = np.flatnonzero(speck)
        if idx.size > budget:
            order = np.argsort(cost[i].reshape(-1)[idx], kind="stable") if cost is not None else np.arange(idx.size)
            idx = idx[order[:budget]]
        out[i].reshape(-1)[idx] = target.reshape(-1)[idx]
    return out


def speck_fill(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the class most of its 4 neighbours share, and whether the pixel is a speck against it."""
    h, w = img.shape
    pad = np.pad(img.astype(np.int16), 1, constant_values=-1)
    near = np.stack([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
    present = (near >= 0).sum(axis=0)
    agree = np.stack([((near == near[k]) & (near >= 0)).sum(axis=0) for k in range(4)])
    best = np.argmax(agree, axis=0)
    target = np.take_along_axis(near, best[None], axis=0)[0]
    votes = np.take_along_axis(agree, best[None], axis=0)[0]
    speck = (target >= 0) & (target != img) & (votes >= np.minimum(3, present)) & (present >= 2)
    return np.where(speck, target, img).astype(np.uint8), speck
