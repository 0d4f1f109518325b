"""The ``classmap`` and ``classmap2`` stages: lossless round trips, the archive stage, golden bytes, hostile streams,
near-lossless."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tac_core.archive import (ArchiveError, ArchiveWriteError, Chain, ChooserOptions, Stage, classmap_chain,
                              decode_class_maps, encode_class_maps, read_archive, simplify_class_maps,
                              write_archive)
from tac_core.archive import format as fmt
from tac_core.archive.chain import decode_stream, encode_stream
from tac_core.archive.classmap import VERSIONS, phases, speck_fill
from tac_core.archive.errors import MalformedArchiveError, StageError
from tac_core.archive.varint import text, uvarint

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = os.environ.get("TAC_REGENERATE_GOLDEN") == "1"


def drawn_maps(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A driving-like sequence: sky, a road wedge with lane marks, a car that drifts, the ego bonnet."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((count, height, width), np.uint8)
    cx, cy = width * rng.uniform(0.4, 0.6), height * 0.55
    for i in range(count):
        horizon = height * (0.45 + 0.02 * np.sin(i / 7))
        m = np.full((height, width), 2, np.uint8)
        road = (y > horizon) & (np.abs(x - width / 2) < (y - horizon) * 1.6 + 2)
        m[road] = 0
        lane = road & (np.abs(np.abs(x - width / 2) - (y - horizon) * 0.5) < 1 + (y - horizon) * 0.02) & \
            (((y + 3 * i) // 6) % 2 == 0)
        m[lane] = 1
        cx += rng.normal(0, 0.6)
        car = (np.abs(x - cx) < width * 0.06) & (np.abs(y - cy - i * 0.2) < height * 0.05)
        m[car] = 3
        m[((x - width / 2) / width) ** 2 * 3 + (y - height) ** 2 / (0.2 * height) ** 2 < 1] = 4
        out[i] = m
    return out


def _round_trip(maps: np.ndarray, classes: int, version: int = 2) -> bytes:
    data = encode_class_maps(maps, classes, version)
    back = decode_class_maps(data, *maps.shape, classes, version=version)
    assert back.dtype == np.uint8 and back.shape == maps.shape
    np.testing.assert_array_equal(back, maps)
    return data


@pytest.mark.parametrize("version", VERSIONS)
def test_phases_cover_every_pixel_once(version):
    for h, w in [(1, 1), (1, 9), (9, 1), (33, 65), (64, 64), (7, 130)]:
        seen = np.zeros((h, w), int)
        for phase in phases(h, w, version):
            seen[np.ix_(phase.rows, phase.cols)] += 1
        assert (seen == 1).all(), (h, w)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_neighbour_a_phase_reads_is_decoded_before_it(version):
    far_seen = 0
    for h, w in [(2, 3), (9, 1), (33, 65), (64, 64), (7, 130), (100, 70)]:
        known = np.zeros((h, w), bool)
        for phase in phases(h, w, version):
            for r, c, row_bad, col_bad in phase.near:
                ok = np.ones((len(r), len(c)), bool)
                ok &= ~np.asarray(row_bad, bool)[:, None] if len(row_bad) else True
                ok &= ~np.asarray(col_bad, bool)[None, :] if len(col_bad) else True
                assert known[np.ix_(r, c)][ok].all(), (h, w, phase.step, phase.kind)
            for r, c, r_in, c_in in phase.far:
                inside = r_in[:, None] & c_in[None, :]
                far_seen += int(inside.sum())
                assert known[np.ix_(r, c)][inside].all(), (h, w, phase.step, phase.kind)
            known[np.ix_(phase.rows, phase.cols)] = True
    assert (far_seen > 0) == (version == 2)


def _noise(shape, classes, seed=1):
    return np.random.default_rng(seed).integers(0, classes, shape).astype(np.uint8)


def _one_pixel(shape):
    m = np.zeros(shape, np.uint8)
    m[(0,) * len(shape)] = 0
    m[tuple(s // 2 for s in shape)] = 3
    return m


@pytest.mark.parametrize("maps, classes", [
    (np.zeros((3, 24, 40), np.uint8), 5),
    (np.full((2, 17, 9), 4, np.uint8), 5),
    (_noise((3, 20, 31), 5), 5),
    (np.zeros((1, 1, 1), np.uint8), 5),
    (np.full((4, 1, 1), 1, np.uint8), 2),
    (_one_pixel((2, 19, 23)), 5),
    (_noise((3, 1, 70), 5), 5),
    (_noise((3, 70, 1), 5), 5),
    (_noise((2, 15, 15), 2), 2),
    (_noise((2, 15, 15), 3), 3),
    (_noise((2, 15, 15), 4), 4),
    (_noise((2, 12, 13), 256), 256),
    (np.zeros((0, 8, 8), np.uint8), 5),
], ids=["zeros", "all_four", "noise5", "1x1", "1x1_binary", "one_pixel", "width1", "height1", "binary",
        "ternary", "four", "classes256", "no_maps"])
@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_on_hostile_maps(maps, classes, version):
    data = _round_trip(maps, classes, version)
    assert len(data) % 4 == 0
    if maps.shape[0] == 0:
        assert data == b""


@pytest.mark.parametrize("version", VERSIONS)
def test_drawn_sequence_round_trips_and_later_maps_cost_little(version):
    maps = drawn_maps(8, 96, 128)
    data = _round_trip(maps, 5, version)
    first = len(encode_class_maps(maps[:1], 5, version))
    assert len(data) < maps.size / 90  # under 0.09 bits a pixel (version 2's extra contexts learn late on so few)
    static = _round_trip(np.repeat(maps[:1], 8, axis=0), 5, version)
    assert len(static) < 4 * first  # repeats cost far less than coding each map alone


def test_uniform_noise_costs_close_to_its_entropy():
    maps = _noise((2, 64, 64), 5)
    ideal = maps.size * np.log2(5) / 8
    assert len(_round_trip(maps, 5)) < 1.5 * ideal


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 20), st.integers(1, 20), st.integers(2, 7), st.integers(0, 2 ** 32 - 1),
       st.floats(0, 1))
def test_round_trip_property(count, height, width, classes, seed, noise):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, classes, (1, height, width)).repeat(count, axis=0)
    flip = rng.random(base.shape) < noise
    maps = np.where(flip, rng.integers(0, classes, base.shape), base).astype(np.uint8)
    for version in VERSIONS:
        _round_trip(maps, classes, version)


def test_version_2_codes_driving_maps_in_fewer_bytes():
    maps = drawn_maps(16, 384, 512, seed=1)
    one, two = _round_trip(maps, 5, 1), _round_trip(maps, 5, 2)
    assert len(two) < 0.99 * len(one)


def test_unknown_versions_are_refused():
    with pytest.raises(StageError):
        encode_class_maps(np.zeros((1, 4, 4), np.uint8), 5, 3)
    with pytest.raises(StageError):
        decode_class_maps(b"", 0, 4, 4, 5, version=0)
    with pytest.raises(ValueError):
        classmap_chain(4, 4, 5, version=3)


def test_writer_refuses_classes_out_of_range_and_bad_arrays():
    with pytest.raises(StageError):
        encode_class_maps(np.full((1, 4, 4), 5, np.uint8), 5)
    with pytest.raises(StageError):
        encode_class_maps(np.zeros((4, 4), np.uint8), 5)
    with pytest.raises(StageError):
        encode_class_maps(np.zeros((1, 4, 4), np.int32), 5)
    with pytest.raises(MalformedArchiveError):
        encode_class_maps(np.zeros((1, 4, 4), np.uint8), 1)


# --- the archive stage -----------------------------------------------------

def _archive(maps: np.ndarray, classes: int = 5, version: int = 2) -> bytes:
    weights = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    chain = classmap_chain(maps.shape[1], maps.shape[2], classes, version)
    return write_archive({"class_maps": maps, "w": weights},
                         options=ChooserOptions(contest_safe=True, effort="fast", chains={"class_maps": chain}))


def test_archive_stage_round_trip_with_a_fixed_chain():
    maps = drawn_maps(5, 48, 64, seed=3)
    archive = read_archive(_archive(maps))
    np.testing.assert_array_equal(archive.tensors["class_maps"], maps)
    chains = {s.names: s.codes_chain for s in archive.sections}
    assert chains[("class_maps",)] == classmap_chain(48, 64, 5)
    assert str(chains[("class_maps",)]) == "classmap2(48,64,5)"
    assert str(classmap_chain(48, 64, 5, version=1)) == "classmap(48,64,5)"
    assert chains[("w",)].stage.id not in fmt.CLASSMAP_STAGES


def test_repack_codes_class_maps_with_the_newest_stage_and_is_never_larger():
    from tac_core.archive.inspect import repack

    fast = ChooserOptions(contest_safe=True, effort="fast")
    big = drawn_maps(16, 384, 512, seed=1)
    old = _archive(big, version=1)
    new = read_archive(repack(old, fast))
    assert {s.names: s.codes_chain.stage.id for s in new.sections}[("class_maps",)] == fmt.S_CLASSMAP2
    assert new.size < len(old)
    np.testing.assert_array_equal(new.tensors["class_maps"], big)
    small = drawn_maps(8, 96, 128)  # too few pixels for classmap2's extra contexts: the old coding stays
    old = _archive(small, version=1)
    assert repack(old, fast) == old
    pinned = ChooserOptions(contest_safe=True, effort="fast", chains={"class_maps": classmap_chain(96, 128, 5, 1)})
    assert {s.names: s.codes_chain for s in read_archive(repack(_archive(small), pinned)).sections}[
        ("class_maps",)] == classmap_chain(96, 128, 5, 1)


def test_chooser_never_picks_classmap_by_itself():
    maps = drawn_maps(3, 32, 32)
    archive = read_archive(write_archive({"class_maps": maps}, options=ChooserOptions(effort="fast")))
    assert all(s.codes_chain.stage.id not in fmt.CLASSMAP_STAGES for s in archive.sections)


def test_chain_for_an_unknown_tensor_is_refused():
    with pytest.raises(ArchiveWriteError):
        write_archive({"a": np.zeros(4, np.uint8)}, options=ChooserOptions(chains={"b": classmap_chain(2, 2, 5)}))


def test_stream_of_partial_maps_is_refused_by_writer_and_reader():
    chain = classmap_chain(4, 4, 5)
    with pytest.raises(MalformedArchiveError):
        encode_stream(bytes(20), chain)
    with pytest.raises(MalformedArchiveError):
        decode_stream(b"", chain, 20)


def golden_archive(version: int) -> bytes:
    return _archive(drawn_maps(6, 40, 56, seed=7), version=version)


@pytest.mark.parametrize("version, name", [(1, "classmap.tac"), (2, "classmap2.tac")])
def test_classmap_archive_matches_golden_bytes(version, name):
    made = golden_archive(version)
    path = GOLDEN / name
    if REGENERATE:
        path.write_bytes(made)
    assert path.read_bytes() == made, f"{name} changed; regenerate with TAC_REGENERATE_GOLDEN=1"
    np.testing.assert_array_equal(read_archive(path.read_bytes()).tensors["class_maps"], drawn_maps(6, 40, 56, seed=7))


# --- hostile streams -------------------------------------------------------

def _container(shape, stage_args, payload: bytes, args_count=3, stage=fmt.S_CLASSMAP2) -> bytes:
    """A by-name container of one raw uint8 tensor coded by a class-map stage with the given arguments."""
    section = (uvarint(fmt.Q_RAW) + uvarint(3) + uvarint(1) + text("m") + uvarint(len(shape))
               + b"".join(uvarint(d) for d in shape) + uvarint(stage << fmt.CHAIN_COUNT_BITS)
               + b"".join(uvarint(a) for a in stage_args[:args_count]) + uvarint(len(payload)))
    return fmt.MAGIC + bytes([fmt.VERSION]) + uvarint(0) + uvarint(0) + uvarint(0) + uvarint(1) + section + payload


@pytest.mark.parametrize("shape, args", [
    ((1, 4, 4), (0, 4, 5)),             # zero height
    ((1, 4, 4), (4, 0, 5)),             # zero width
    ((1, 4, 4), (4, 4, 1)),             # one class
    ((1, 4, 4), (4, 4, 257)),           # too many classes
    ((1, 4, 4), (1 << 15, 1 << 14, 5)),  # a map above 2^28 pixels
    ((1, 4, 4), (4, 5, 5)),             # 16 bytes are not whole 4x5 maps
    ((2, 3, 3), (4, 4, 5)),             # 18 bytes are not whole 4x4 maps
])
@pytest.mark.parametrize("stage", sorted(fmt.CLASSMAP_STAGES))
def test_reader_rejects_hostile_stage_arguments_quickly(shape, args, stage):
    data = _container(shape, args, b"\x00" * 4, stage=stage)
    start = time.perf_counter()
    with pytest.raises(ArchiveError):
        read_archive(data)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("stage, version", sorted(fmt.CLASSMAP_STAGES.items()))
def test_reader_rejects_ragged_truncated_and_trailing_words(stage, version):
    maps = drawn_maps(3, 24, 32, seed=2)
    words = encode_class_maps(maps, 5, version)
    good = _container(maps.shape, (24, 32, 5), words, stage=stage)
    np.testing.assert_array_equal(read_archive(good).tensors["m"], maps)
    for bad in (words[:-1], words + b"\x00\x00", words[:-4] if len(words) > 4 else b"\x01\x02\x03",
                words + b"\xff" * 8):
        try:
            out = read_archive(_container(maps.shape, (24, 32, 5), bad, stage=stage)).tensors["m"]
        except ArchiveError:
            continue
        # a range coder cannot always tell (docs section 5): then values are wrong but the size is right
        assert out.shape == maps.shape and (out < 5).all()
    with pytest.raises(StageError):
        decode_class_maps(words[:-1], *maps.shape, 5, version=version)
    with pytest.raises(StageError):
        decode_class_maps(b"\x00" * 4, 0, 4, 4, 5, version=version)


@pytest.mark.parametrize("version", VERSIONS)
def test_mutated_streams_raise_only_archive_errors_and_stay_in_range(version):
    maps = drawn_maps(2, 24, 32, seed=4)
    words = bytearray(encode_class_maps(maps, 5, version))
    rng = np.random.default_rng(5)
    for _ in range(30):
        bad = bytearray(words)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        try:
            out = decode_class_maps(bytes(bad), *maps.shape, 5, version=version)
        except ArchiveError:
            continue
        assert out.shape == maps.shape and int(out.max()) < 5


@pytest.mark.parametrize("stage", sorted(fmt.CLASSMAP_STAGES))
def test_unknown_argument_count_is_a_format_error(stage):
    with pytest.raises(MalformedArchiveError):
        decode_stream(b"", Chain((), Stage(stage, (4, 4))), 0)


# --- near-lossless ---------------------------------------------------------

def _speckled(maps: np.ndarray, rate: float, seed: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = maps.copy()
    hit = rng.random(maps.shape) < rate
    out[hit] = (out[hit] + rng.integers(1, 5, int(hit.sum()))) % 5
    return out


def test_simplify_changes_only_isolated_pixels_and_lowers_the_size():
    clean = drawn_maps(6, 64, 96, seed=11)
    noisy = _speckled(clean, 0.003)
    simple = simplify_class_maps(noisy, max_flip_fraction=0.01)
    changed = np.argwhere(simple != noisy)
    assert len(changed) > 0
    for i, y, x in changed:
        img = noisy[i]
        near = [img[yy, xx] for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1))
                if 0 <= yy < img.shape[0] and 0 <= xx < img.shape[1]]
        assert sum(n == img[y, x] for n in near) <= 1  # a speck of one or two pixels
        assert sum(n == simple[i, y, x] for n in near) >= min(3, len(near))
        assert i == 0 or noisy[i - 1, y, x] != img[y, x]
    assert (simple != clean).sum() < (noisy != clean).sum() / 2
    assert len(encode_class_maps(simple, 5)) < 0.9 * len(encode_class_maps(noisy, 5))


def test_simplify_keeps_clean_maps_and_thin_structures():
    clean = drawn_maps(4, 48, 64, seed=12)
    line = clean.copy()
    line[:, 10, 5:60] = 3  # a one-pixel-high line present in every map is not a speck
    out = simplify_class_maps(line)
    assert np.array_equal(out[1:, 10, 5:60], line[1:, 10, 5:60])
    assert np.array_equal(out[0, 10, 6:59], line[0, 10, 6:59])  # in map 0 only the line's tips may go
    assert not speck_fill(clean[0])[1][clean[0] == 1].all()


def test_simplify_respects_the_budget_and_prefers_cheap_pixels():
    img = np.zeros((1, 20, 20), np.uint8)
    spots = [(2, 2), (2, 10), (10, 2), (10, 10), (15, 15)]
    for y, x in spots:
        img[0, y, x] = 2
    cost = np.ones(img.shape)
    cost[0, 10, 10] = 0.1
    cost[0, 2, 10] = 0.2
    out = simplify_class_maps(img, cost, max_flip_fraction=2 / 400)
    assert (out != img).sum() == 2
    assert out[0, 10, 10] == 0 and out[0, 2, 10] == 0 and out[0, 2, 2] == 2
    assert np.array_equal(simplify_class_maps(img, max_flip_fraction=0), img)


def test_speck_present_in_the_previous_map_is_kept():
    img = np.zeros((2, 9, 9), np.uint8)
    img[:, 4, 4] = 3
    out = simplify_class_maps(img, max_flip_fraction=0.05)
    assert out[0, 4, 4] == 0 and out[1, 4, 4] == 3  # map 0 has no previous map; map 1's speck persists


def test_encoding_remembers_recent_maps_by_content():
    from tac_core.archive import classmap

    rng = np.random.default_rng(5)
    maps = (rng.random((3, 40, 48)) < 0.1).astype(np.uint8)
    first = encode_class_maps(maps, 2)
    assert encode_class_maps(maps.copy(), 2) is first                  # same bytes in: the remembered result
    edited = maps.copy()
    edited[1, 7, 9] ^= 1
    other = encode_class_maps(edited, 2)
    assert other != first and np.array_equal(decode_class_maps(other, 3, 40, 48, 2), edited)
    assert encode_class_maps(maps, 3) is not first                     # the class count is part of the key
    for k in range(classmap._REMEMBERED + 1):                          # only the last few are kept
        encode_class_maps(np.full((1, 8, 8), k % 2, np.uint8) + (np.eye(8, dtype=np.uint8)[None] if k > 1 else 0), 3)
    assert encode_class_maps(maps, 2) is not first and encode_class_maps(maps, 2) == first
