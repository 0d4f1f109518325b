"""Entropy stages (docs section 5): store, zstd, raw LZMA, brotli, the three range coders, classmap and classmap2.

Every decoder is told the exact output size and stops there: a stream that
would produce more (a decompression bomb) or less fails with ``StageError``.
zstandard is imported only when a zstd stage is met, so readers without it
(the contest runtime) work on archives that do not use it.
"""

from __future__ import annotations

import lzma

from tac_core.archive import format as fmt
from tac_core.archive import classmap, grouped, rangecoder
from tac_core.archive.errors import MalformedArchiveError, StageError, UnknownIdError

_ZSTD_DICTIONARIES: dict[int, bytes] = {}
_ZSTD_DICT_MAGIC = b"\x37\xa4\x30\xec"
_ZSTD_MAX_WINDOW = 1 << 27
_FEED = 256  # compressed bytes fed per step to decoders without an output limit


def zstd_dictionary_id(data: bytes) -> int:
    """The id a trained zstd dictionary carries in its header."""
    if len(data) < 8 or data[:4] != _ZSTD_DICT_MAGIC:
        raise StageError("not a trained zstd dictionary (missing its magic number)")
    return int.from_bytes(data[4:8], "little")


def register_zstd_dictionary(data: bytes) -> int:
    """Make a trained zstd dictionary available to writer and reader; returns its id."""
    dict_id = zstd_dictionary_id(data)
    if dict_id == 0:
        raise StageError("a zstd dictionary with id 0 cannot be referenced; train it with a non-zero id")
    _ZSTD_DICTIONARIES[dict_id] = bytes(data)
    return dict_id


def _zstd():
    try:
        import zstandard
    except ImportError:
        raise StageError("this archive uses zstd, but the zstandard package is not installed; "
                         "repack it with contest-safe stages (tac archive repack --contest-safe)") from None
    return zstandard


def check_stage_args(sid: int, args: tuple[int, ...]) -> None:
    """Refuse an unknown stage or arguments outside the spec's ranges."""
    if sid not in fmt.STAGES:
        raise UnknownIdError(f"unknown entropy stage id {sid}; this reader knows {sorted(fmt.STAGES)}")
    if len(args) != fmt.STAGE_ARG_COUNTS[sid]:
        raise MalformedArchiveError(f"stage {fmt.STAGES[sid]} takes {fmt.STAGE_ARG_COUNTS[sid]} arguments")
    if sid == fmt.S_LZMA:
        filt, props, dict_log2, delta = args
        lc, lp, pb = lzma_properties(props)
        lo, hi = fmt.LZMA_DICT_LOG2_RANGE
        if filt not in (1, 2) or props >= 225 or lc + lp > 4 or not lo <= dict_log2 <= hi or delta > 256:
            raise MalformedArchiveError(f"lzma arguments out of range: filter {filt}, properties {props} "
                                        f"(lc {lc}, lp {lp}, pb {pb}), log2 dictionary {dict_log2}, delta {delta}")
    if sid == fmt.S_RANGE_ADAPTIVE:
        lo, hi = fmt.RANGE_BLOCK_LOG2_RANGE
        if not lo <= args[0] <= hi:
            raise MalformedArchiveError(f"range_adaptive block log2 must be in {lo}..{hi}, got {args[0]}")
    if sid == fmt.S_RANGE_GROUPED:
        grouped.check_args(args)
    if sid in fmt.CLASSMAP_STAGES:
        classmap.check_args(args)


def lzma_props(lc: int, lp: int, pb: int) -> int:
    """LZMA's properties byte: ``(pb * 5 + lp) * 9 + lc``."""
    return (pb * 5 + lp) * 9 + lc


def lzma_properties(props: int) -> tuple[int, int, int]:
    """``(lc, lp, pb)`` of an LZMA properties byte."""
    return props % 9, props // 9 % 5, props // 45


def _lzma_filters(args: tuple[int, ...], preset: int | None = None) -> list[dict]:
    filt, props, dict_log2, delta = args
    lc, lp, pb = lzma_properties(props)
    lz = {"id": lzma.FILTER_LZMA1 if filt == 1 else lzma.FILTER_LZMA2,
          "lc": lc, "lp": lp, "pb": pb, "dict_size": 1 << dict_log2}
    if preset is not None:
        lz["preset"] = preset
    return ([{"id": lzma.FILTER_DELTA, "dist": delta}] if delta else []) + [lz]


def encode(sid: int, args: tuple[int, ...], raw: bytes, level: int | None = None,
           groups: tuple[tuple[int, int], ...] | None = None) -> bytes:
    """Code ``raw`` with stage ``sid``; ``level`` is zstd's level (not recorded; default 19).

    ``groups`` is ``range_grouped``'s layout as (count, length) runs of symbols
    (recorded in its coded bytes; default one group); other stages ignore it.
    """
    check_stage_args(sid, args)
    if sid == fmt.S_STORE:
        return bytes(raw)
    if sid == fmt.S_ZSTD:
        z = _zstd()
        dict_data = None
        if args[0]:
            if args[0] not in _ZSTD_DICTIONARIES:
                raise StageError(f"zstd dictionary {args[0]} is not registered")
            dict_data = z.ZstdCompressionDict(_ZSTD_DICTIONARIES[args[0]])
        cctx = z.ZstdCompressor(level=level or 19, dict_data=dict_data, write_content_size=False,
                                write_checksum=False, write_dict_id=False)
        return cctx.compress(raw)
    if sid == fmt.S_LZMA:
        fmt_ = lzma.FORMAT_RAW
        return lzma.compress(raw, format=fmt_, filters=_lzma_filters(args, 9 | lzma.PRESET_EXTREME))
    if sid == fmt.S_BROTLI:
        import brotli
        return brotli.compress(raw, quality=11, lgwin=24)
    if sid == fmt.S_RANGE_STATIC:
        return rangecoder.encode_static(raw)
    if sid == fmt.S_RANGE_GROUPED:
        return grouped.encode(raw, args, groups)
    if sid in fmt.CLASSMAP_STAGES:
        return classmap.encode_stream(raw, args, fmt.CLASSMAP_STAGES[sid])
    return rangecoder.encode_adaptive(raw, args[0])


def _exact(out: bytes, size: int, name: str) -> bytes:
    if len(out) != size:
        raise StageError(f"{name} stream decodes to {'more' if len(out) > size else len(out)} bytes, "
                         f"the header declares {size}")
    return out


def decode(sid: int, args: tuple[int, ...], coded: bytes, size: int) -> bytes:
    """Exactly ``size`` bytes from ``coded``; ``StageError`` if the stream says otherwise."""
    check_stage_args(sid, args)
    name = fmt.STAGES[sid]
    if sid == fmt.S_STORE:
        return _exact(bytes(coded), size, name)
    if sid == fmt.S_RANGE_STATIC:
        return rangecoder.decode_static(coded, size)
    if sid == fmt.S_RANGE_ADAPTIVE:
        return rangecoder.decode_adaptive(coded, size, args[0])
    if sid == fmt.S_RANGE_GROUPED:
        return grouped.decode(coded, size, args)
    if sid in fmt.CLASSMAP_STAGES:
        return classmap.decode_stream(coded, size, args, fmt.CLASSMAP_STAGES[sid])
    if sid == fmt.S_LZMA:
        try:
            dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma_filters(args))
            out = dec.decompress(bytes(coded), max_length=size + 1)
            if not dec.eof and len(out) <= size:
                out += dec.decompress(b"", max_length=size + 1 - len(out))
        except (lzma.LZMAError, ValueError, MemoryError) as exc:
            raise StageError(f"lzma stream is corrupt ({exc})") from None
        if not dec.eof or dec.unused_data:
            raise StageError("lzma stream does not end where its declared size does")
        return _exact(out, size, name)
    if sid == fmt.S_BROTLI:
        return _exact(_brotli_decode(bytes(coded), size), size, name)
    return _exact(_zstd_decode(bytes(coded), size, args[0]), size, name)


def _brotli_decode(coded: bytes, size: int) -> bytes:
    import brotli
    dec = brotli.Decompressor()
    out = bytearray()
    try:
        try:
            out += dec.process(coded, output_buffer_limit=size + 1)
            while not dec.is_finished() and len(out) <= size and not dec.can_accept_more_data():
                chunk = dec.process(b"", output_buffer_limit=size + 1 - len(out))
                if not chunk:
                    break
                out += chunk
        except TypeError:  # older brotli: no output limit, so feed small pieces and watch the size
            for i in range(0, len(coded), _FEED):
                out += dec.process(coded[i:i + _FEED])
                if len(out) > size:
                    break
    except brotli.error as exc:
        raise StageError(f"brotli stream is corrupt ({exc})") from None
    if len(out) <= size and not dec.is_finished():
        raise StageError("brotli stream ends early")
    return bytes(out)


def _zstd_decode(coded: bytes, size: int, dict_id: int) -> bytes:
    z = _zstd()
    dict_data = None
    if dict_id:
        if dict_id not in _ZSTD_DICTIONARIES:
            raise StageError(f"this archive needs zstd dictionary {dict_id}, which is not registered "
                             f"(register_zstd_dictionary)")
        dict_data = z.ZstdCompressionDict(_ZSTD_DICTIONARIES[dict_id])
    out = bytearray()
    fed = 0
    try:
        dobj = z.ZstdDecompressor(dict_data=dict_data, max_window_size=_ZSTD_MAX_WINDOW).decompressobj()
        while fed < len(coded) and len(out) <= size and not dobj.eof:
            out += dobj.decompress(coded[fed:fed + _FEED])
            fed += _FEED
    except z.ZstdError as exc:
        raise StageError(f"zstd stream is corrupt ({exc})") from None
    if len(out) <= size and (not dobj.eof or dobj.unused_data or fed < len(coded)):
        raise StageError("zstd stream does not end where its declared size does")
    return bytes(out)
