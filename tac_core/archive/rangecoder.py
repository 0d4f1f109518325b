"""Range coding of byte symbols with categorical models (constriction), static or adaptive.

``range_static`` stores a frequency table before the words; ``range_adaptive``
stores none and learns block by block: block ``b`` uses counts of blocks
``0..b-1`` plus one. Both decode exactly ``n`` symbols and no more.
"""

from __future__ import annotations

import numpy as np

from tac_core.archive.errors import StageError
from tac_core.archive.varint import Cursor, uvarint

_TABLE_TOTALS = (1 << 10, 1 << 12, 1 << 14)
_MAX_FREQUENCY = 1 << 24


def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - constriction is a core dependency
        raise StageError("this archive uses range coding, which needs the constriction package") from None
    return constriction


def _model(c, weights: np.ndarray):
    return c.stream.model.Categorical(weights.astype(np.float64), perfect=False)


def _alphabet(symbols: np.ndarray) -> tuple[int, int]:
    """First symbol and alphabet size (at least 2: constriction needs two symbols)."""
    if symbols.size == 0:
        return 0, 2
    lo, hi = int(symbols.min()), int(symbols.max())
    if hi == lo:
        lo, hi = (lo - 1, hi) if lo == 255 else (lo, hi + 1)
    return lo, hi - lo + 1


def _words(encoder) -> bytes:
    return encoder.get_compressed().astype("<u4").tobytes()


def encode_static(data: bytes) -> bytes:
    """A frequency table then range-coder words; the smallest of a few table precisions."""
    c = _constriction()
    symbols = np.frombuffer(data, dtype=np.uint8)
    lo, m = _alphabet(symbols)
    shifted = (symbols.astype(np.int32) - lo)
    counts = np.bincount(shifted, minlength=m).astype(np.float64)
    best = None
    for total in _TABLE_TOTALS:
        freq = np.where(counts > 0, np.maximum(1, np.rint(counts * total / max(counts.sum(), 1))), 0)
        if not freq.any():
            freq[0] = 1
        table = uvarint(lo) + uvarint(m) + b"".join(uvarint(int(f)) for f in freq)
        encoder = c.stream.queue.RangeEncoder()
        if shifted.size:
            encoder.encode(shifted, _model(c, freq))
        out = table + _words(encoder)
        if best is None or len(out) < len(best):
            best = out
    return best


def _read_alphabet(cur: Cursor) -> tuple[int, int]:
    lo = cur.uvarint("range coder's first symbol", 255)
    m = cur.uvarint("range coder's alphabet size", 256 - lo)
    if m < 2:
        raise StageError("range coder's alphabet must have at least 2 symbols")
    return lo, m


def _decode_words(words: bytes, what: str):
    if len(words) % 4:
        raise StageError(f"{what}: coded words are {len(words)} bytes, not a multiple of 4")
    c = _constriction()
    return c, c.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))


def _finish(decoder, symbols: np.ndarray, lo: int, what: str) -> bytes:
    if not decoder.maybe_exhausted():
        raise StageError(f"{what}: range-coded data does not end where the declared symbol count does")
    out = symbols.astype(np.int64) + lo
    if out.size and out.max() > 255:
        raise StageError(f"{what}: a decoded symbol falls outside 0..255")
    return out.astype(np.uint8).tobytes()


def decode_static(coded: bytes, n: int) -> bytes:
    """Exactly ``n`` bytes from a ``range_static`` stream."""
    cur = Cursor(coded)
    lo, m = _read_alphabet(cur)
    freq = np.array([cur.uvarint("range coder frequency", _MAX_FREQUENCY) for _ in range(m)], dtype=np.float64)
    if not freq.any():
        raise StageError("range coder's frequency table is all zeros")
    c, decoder = _decode_words(bytes(coded[cur.pos:]), "range_static")
    try:
        symbols = decoder.decode(_model(c, freq), n) if n else np.zeros(0, np.int32)
    except Exception as exc:  # constriction reports corrupt input with its own exception types
        raise StageError(f"range_static: corrupt coded data ({exc})") from None
    return _finish(decoder, symbols, lo, "range_static")


def encode_adaptive(data: bytes, block_log2: int) -> bytes:
    """Alphabet bounds then words, each block coded with counts learnt from the blocks before it."""
    c = _constriction()
    symbols = np.frombuffer(data, dtype=np.uint8)
    lo, m = _alphabet(symbols)
    shifted = symbols.astype(np.int32) - lo
    counts = np.ones(m, dtype=np.float64)
    encoder = c.stream.queue.RangeEncoder()
    block = 1 << block_log2
    for start in range(0, shifted.size, block):
        part = shifted[start:start + block]
        encoder.encode(part, _model(c, counts))
        counts += np.bincount(part, minlength=m)
    return uvarint(lo) + uvarint(m) + _words(encoder)


def decode_adaptive(coded: bytes, n: int, block_log2: int) -> bytes:
    """Exactly ``n`` bytes from a ``range_adaptive`` stream."""
    cur = Cursor(coded)
    lo, m = _read_alphabet(cur)
    c, decoder = _decode_words(bytes(coded[cur.pos:]), "range_adaptive")
    counts = np.ones(m, dtype=np.float64)
    block = 1 << block_log2
    parts = []
    try:
        for start in range(0, n, block):
            part = np.asarray(decoder.decode(_model(c, counts), min(block, n - start)), dtype=np.int64)
            if part.size and (part.min() < 0 or part.max() >= m):
                raise StageError("range_adaptive: a decoded symbol falls outside the alphabet")
            counts += np.bincount(part, minlength=m)[:m]
            parts.append(part)
    except StageError:
        raise
    except Exception as exc:  # constriction reports corrupt input with its own exception types
        raise StageError(f"range_adaptive: corrupt coded data ({exc})") from None
    symbols = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return _finish(decoder, symbols, lo, "range_adaptive")
