"""The ``range_grouped`` stage: round trips, layouts, hostile streams and the chooser's use of it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tac_core.archive import Chain, ChooserOptions, QuantSpec, Stage, quantize, read_archive, write_archive
from tac_core.archive import format as fmt
from tac_core.archive import grouped
from tac_core.archive.chain import decode_stream, encode_stream
from tac_core.archive.errors import ArchiveError, ArchiveLimitError, MalformedArchiveError
from tac_core.archive.varint import uvarint

KINDS = sorted(grouped.KINDS)


def _round_trip(raw: bytes, args, runs=None) -> bytes:
    coded = grouped.encode(raw, args, runs)
    assert grouped.decode(coded, len(raw), args) == raw
    return coded


@pytest.mark.parametrize("family", grouped.FAMILIES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make", [lambda n: bytes(n), lambda n: b"\x7f" * n, lambda n: b"\x80" * n,
                                  lambda n: b"\xff" * n, lambda n: bytes([0, 255]) * (n // 2),
                                  lambda n: np.random.default_rng(n).integers(0, 256, n).astype(np.uint8).tobytes()],
                         ids=["zeros", "max", "min", "all_ones", "extremes", "uniform"])
def test_round_trip_on_adversarial_streams(make, kind, family):
    raw = make(1000)
    count = grouped.symbol_count(len(raw), kind)
    _round_trip(raw, (kind, family))
    _round_trip(raw, (kind, family), grouped.merge_runs([7] * (count // 7) + [count % 7]))


def test_empty_stream_has_no_layout():
    assert grouped.encode(b"", (1, 1)) == uvarint(0)
    assert grouped.decode(uvarint(0), 0, (1, 1)) == b""


def test_per_channel_models_beat_one_model_on_channels_of_different_spread():
    rng = np.random.default_rng(0)
    x = rng.laplace(size=(64, 400)) * np.geomspace(0.5, 60, 64)[:, None]
    raw = np.clip(np.rint(x), -127, 127).astype(np.int8).tobytes()
    one = _round_trip(raw, (1, 1))
    rows = _round_trip(raw, (1, 1), ((64, 400),))
    assert len(rows) < 0.9 * len(one)


def test_int4_nibbles_round_trip_with_odd_layout():
    codes = np.random.default_rng(1).integers(-7, 8, 33).astype(np.int8)
    q = quantize(codes.astype(np.float32) / 7, QuantSpec("int4_sym"))
    data = write_archive({"w": q}, options=ChooserOptions(stages=("store", "range_grouped")))
    np.testing.assert_array_equal(read_archive(data).quantized["w"].codes, q.codes)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.sampled_from(KINDS), st.sampled_from(grouped.FAMILIES),
       st.integers(1, 50))
def test_round_trip_property(raw, kind, family, length):
    count = grouped.symbol_count(len(raw), kind)
    _round_trip(raw, (kind, family), grouped.merge_runs([length] * (count // length) + [count % length]))


@pytest.mark.parametrize("coded, error", [
    (uvarint(1) + uvarint(1) + uvarint(99) + b"\x00", MalformedArchiveError),  # layout covers 99 of 100
    (uvarint(1) + uvarint(0) + uvarint(100), MalformedArchiveError),  # empty run
    (uvarint(fmt.MAX_GROUPED_RUNS + 1), ArchiveLimitError),
    (uvarint(2) + uvarint(fmt.MAX_GROUPED_GROUPS) + uvarint(1) + uvarint(1) + uvarint(1), ArchiveLimitError),
    (uvarint(1) + uvarint(1) + uvarint(100) + b"\x05" + b"\x00\x00\x00", ArchiveError),  # ragged words
    (uvarint(1) + uvarint(1) + uvarint(100), ArchiveError),  # model bytes missing
    (uvarint(0), MalformedArchiveError),  # no runs for a non-empty stream
])
def test_malformed_layouts_are_rejected(coded, error):
    with pytest.raises(error):
        grouped.decode(coded, 100, (1, 1))


def test_centre_outside_alphabet_is_rejected():
    with pytest.raises(MalformedArchiveError):
        grouped.decode(uvarint(1) + uvarint(1) + uvarint(20) + b"\x00" + b"\x10", 10, (4, 1))


@pytest.mark.parametrize("args", [(0, 1), (5, 1), (1, 0), (1, 3)])
def test_unknown_kind_or_family_is_rejected(args):
    with pytest.raises(MalformedArchiveError):
        decode_stream(b"", Chain((), Stage(fmt.S_RANGE_GROUPED, args)), 0)


def test_truncated_and_mutated_streams_raise_only_archive_errors():
    raw = np.clip(np.rint(np.random.default_rng(2).laplace(scale=9, size=3000)), -127, 127).astype(np.int8)
    chain = Chain((), Stage(fmt.S_RANGE_GROUPED, (1, 1)))
    coded = encode_stream(raw.tobytes(), chain, groups=((10, 300),))
    rng = np.random.default_rng(3)
    header = len(uvarint(1) + uvarint(10) + uvarint(300)) + 10
    for cut in range(header):
        with pytest.raises(ArchiveError):
            decode_stream(coded[:cut], chain, raw.size)
    # a range coder cannot always tell cut or flipped words: wrong values, right size (docs section 5)
    damaged = [coded[:cut] for cut in range(header, len(coded), 97)]
    for _ in range(60):
        bad = bytearray(coded)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(bad))
    for bad in damaged:
        try:
            out = decode_stream(bad, chain, raw.size)
        except ArchiveError:
            continue
        assert len(out) == raw.size


def test_decoding_200_kb_is_fast():
    x = np.random.default_rng(4).laplace(scale=20, size=(682, 300))
    raw = np.clip(np.rint(x), -127, 127).astype(np.int8).tobytes()
    coded = grouped.encode(raw, (1, 1), ((682, 300),))
    start = time.perf_counter()
    grouped.decode(coded, len(raw), (1, 1))
    assert time.perf_counter() - start < 0.5


def test_contest_safe_chooser_uses_grouped_models_for_channels_of_different_spread():
    rng = np.random.default_rng(5)
    w = (rng.laplace(size=(32, 16, 3, 3)) * np.geomspace(0.01, 1, 32)[:, None, None, None]).astype(np.float32)
    q = quantize(w, QuantSpec("int8_sym"))
    data = write_archive({"w": q}, options=ChooserOptions(contest_safe=True))
    archive = read_archive(data)
    assert archive.sections[0].codes_chain.stage.id == fmt.S_RANGE_GROUPED
    assert "range_grouped" in str(archive.sections[0].codes_chain)
    np.testing.assert_array_equal(archive.quantized["w"].codes, q.codes)
