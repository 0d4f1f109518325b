"""Byte transforms, entropy stages and the chooser: round trips, bombs, choices."""

from __future__ import annotations

import lzma

import brotli
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings, strategies as st

from tac_core.archive import Chain, ChooserOptions, Stage, StageError, Transform, register_zstd_dictionary
from tac_core.archive import format as fmt
from tac_core.archive.chain import decode_stream, encode_stream
from tac_core.archive.chooser import best_chain
from tac_core.archive.errors import ArchiveError
from tac_core.archive.transforms import forward, inverse

STAGES = [Stage(fmt.S_STORE), Stage(fmt.S_ZSTD, (0,)), Stage(fmt.S_LZMA, (1, 0, 16, 0)),
          Stage(fmt.S_LZMA, (2, 93, 20, 2)), Stage(fmt.S_BROTLI), Stage(fmt.S_RANGE_STATIC),
          Stage(fmt.S_RANGE_ADAPTIVE, (8,))]


def laplace_int8(n: int, seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).laplace(scale=6, size=n)
    return np.clip(np.rint(x), -127, 127).astype(np.int8).tobytes()


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([(1, 1), (1, 2), (1, 4), (2, 1), (2, 7), (3, 2), (3, 4),
                                                  (4, 1), (4, 2), (4, 3)]))
def test_transforms_invert(data, t):
    tid, arg = t
    x = np.frombuffer(data, dtype=np.uint8)
    if tid in (1, 3, 4) and x.size % arg:
        with pytest.raises(ArchiveError):
            forward(tid, arg, x)
        return
    y = forward(tid, arg, x)
    assert y.size == x.size and inverse(tid, arg, y).tobytes() == data


def test_zigzag_maps_small_signed_to_small_unsigned():
    x = np.array([0, -1, 1, -2, 2, 127, -128], dtype=np.int8).view(np.uint8)
    assert forward(fmt.T_ZIGZAG, 1, x).tolist() == [0, 1, 2, 3, 4, 254, 255]


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(STAGES))
def test_every_stage_round_trips(data, stage):
    chain = Chain((), stage)
    assert decode_stream(encode_stream(data, chain), chain, len(data)) == data


@pytest.mark.parametrize("stage", [s for s in STAGES if s.id not in (fmt.S_RANGE_STATIC, fmt.S_RANGE_ADAPTIVE)],
                         ids=str)
def test_wrong_declared_size_is_rejected(stage):
    # (a range coder cannot tell where its symbols end; the container's sizes come from the shapes)
    data = laplace_int8(5000)
    coded = encode_stream(data, Chain((), stage))
    for size in (len(data) - 1, len(data) + 1):
        with pytest.raises(StageError):
            decode_stream(coded, Chain((), stage), size)


@pytest.mark.parametrize("make", [
    lambda raw: brotli.compress(raw),
    lambda raw: zstandard.ZstdCompressor(level=3).compress(raw),
    lambda raw: lzma.compress(raw, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1, "lc": 0, "lp": 0,
                                                                     "pb": 0, "dict_size": 1 << 16}]),
], ids=["brotli", "zstd", "lzma"])
def test_decompression_bombs_stop_at_the_declared_size(make):
    bomb = make(bytes(64 << 20))  # 64 MiB of zeros in a few kilobytes
    for stage in (Stage(fmt.S_BROTLI), Stage(fmt.S_ZSTD, (0,)), Stage(fmt.S_LZMA, (1, 0, 16, 0))):
        try:
            decode_stream(bomb, Chain((), stage), 1000)
        except StageError:
            continue
        raise AssertionError(f"{stage} accepted a bomb")


def test_zstd_dictionary_is_recorded_by_id():
    samples = [laplace_int8(2000, seed) for seed in range(40)]
    dictionary = zstandard.train_dictionary(4096, samples).as_bytes()
    dict_id = register_zstd_dictionary(dictionary)
    chain = Chain((), Stage(fmt.S_ZSTD, (dict_id,)))
    data = laplace_int8(2000, 99)
    assert decode_stream(encode_stream(data, chain), chain, len(data)) == data
    with pytest.raises(StageError, match="not registered"):
        decode_stream(b"\x00" * 10, Chain((), Stage(fmt.S_ZSTD, (dict_id + 1,))), 10)


@pytest.mark.parametrize("stage", [Stage(fmt.S_LZMA, (3, 0, 16, 0)), Stage(fmt.S_LZMA, (1, 225, 16, 0)),
                                   Stage(fmt.S_LZMA, (1, 0, 30, 0)), Stage(fmt.S_RANGE_ADAPTIVE, (30,)),
                                   Stage(99)], ids=str)
def test_out_of_range_stage_arguments_are_rejected(stage):
    with pytest.raises(ArchiveError):
        decode_stream(b"", Chain((), stage), 0)


def test_chooser_is_no_worse_than_any_single_candidate():
    data = laplace_int8(20000)
    chain, coded = best_chain(data, 1, True, (200, 100), ChooserOptions())
    assert decode_stream(coded, chain, len(data)) == data
    for stage in STAGES:
        for ts in ((), (Transform(fmt.T_ZIGZAG, 1),)):
            assert len(coded) <= len(encode_stream(data, Chain(ts, stage))) + 4, (ts, stage)


def test_contest_safe_chooser_never_picks_zstd():
    data = bytes(range(256)) * 50
    for opts in (ChooserOptions(contest_safe=True), ChooserOptions(stages=("store", "brotli", "lzma"))):
        chain, _ = best_chain(data, 1, False, None, opts)
        assert chain.stage.id != fmt.S_ZSTD
    chain, _ = best_chain(data, 1, False, None, ChooserOptions(stages=("zstd",)))
    assert chain.stage.id == fmt.S_ZSTD


def test_delta_helps_correlated_rows():
    rows = np.cumsum(np.random.default_rng(0).integers(-2, 3, size=(300, 28)), axis=0)
    data = np.clip(rows, -127, 127).astype(np.int8).tobytes()
    chain, _ = best_chain(data, 1, True, (300, 28), ChooserOptions(stages=("range_static",)))
    assert chain.transforms and chain.transforms[0] == Transform(fmt.T_DELTA, 28)


def test_max_effort_codes_packed_int4_tensors_whose_rows_are_not_whole_bytes():
    from tac_core.archive import QuantSpec, quantize, read_archive, write_archive

    rng = np.random.default_rng(3)
    weights = rng.normal(0, 1, (7, 3, 3, 3)).astype(np.float32)        # 189 codes -> 95 packed bytes
    q = quantize(weights, QuantSpec("int4_sym", axis=0))
    data = write_archive({"w": q}, options=ChooserOptions(effort="max"))
    assert np.array_equal(read_archive(data).tensors["w"], read_archive(write_archive({"w": q})).tensors["w"])
