"""Golden archives (exact bytes), mutation fuzzing of them, and the folder of hostile inputs.

``TAC_REGENERATE_GOLDEN=1`` rewrites tests/golden/ and tests/attacks/;
otherwise the writer's output must match the stored bytes exactly.
"""

from __future__ import annotations

import io
import lzma
import os
import time
import zipfile
from pathlib import Path

import brotli
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings, strategies as st

from tac_core.archive import (Architecture, ArchiveError, Chain, ChooserOptions, QuantSpec, SectionPlan, Stage,
                              TensorSchema, Transform, encode_archive, pack_zip, quantize, read_archive,
                              write_archive)
from tac_core.archive import format as fmt
from tac_core.archive.inspect import describe
from tac_core.archive.varint import svarint, text, uvarint

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
ATTACKS = HERE / "attacks"
REGENERATE = os.environ.get("TAC_REGENERATE_GOLDEN") == "1"
SCHEMA = TensorSchema(fmt.PRIVATE_ARCH_START + 7, (("conv.weight", (6, 4, 3, 3)), ("conv.bias", (6,)),
                                                   ("head.weight", (3, 6)), ("latents", (None, 8))))
SCHEMAS = {SCHEMA.arch_id: SCHEMA}


def _rng():
    return np.random.default_rng(20240601)


def named_tensors():
    """One tensor per quantizer, from a fixed seed."""
    rng = _rng()
    x = lambda *s: rng.laplace(scale=0.3, size=s).astype(np.float32)  # noqa: E731
    return {
        "a.int8_sym": quantize(x(6, 4, 3), QuantSpec("int8_sym", axis=0)),
        "b.int8_asym": quantize(x(5, 7), QuantSpec("int8_asym", axis=1)),
        "c.int4_sym": quantize(x(9), QuantSpec("int4_sym")),
        "d.int4_asym": quantize(x(3, 5), QuantSpec("int4_asym", axis=0)),
        "e.fp4": quantize(x(70), QuantSpec("fp4_e2m1")),
        "f.fp16": quantize(x(4, 4), QuantSpec("fp16")),
        "g.raw_u8": (np.arange(40) % 5).astype(np.uint8).reshape(5, 8),
        "h.raw_i16": np.arange(-6, 6, dtype=np.int16),
        "i.raw_f32": x(3),
    }


def _c(*ts, stage):
    return Chain(tuple(Transform(*t) for t in ts), stage)


STORE = _c(stage=Stage(fmt.S_STORE))


def named_plan():
    """An explicit plan that uses every transform and stage once."""
    return [
        SectionPlan(("a.int8_sym",), _c((fmt.T_ZIGZAG, 1), stage=Stage(fmt.S_BROTLI)), STORE),
        SectionPlan(("b.int8_asym",), _c((fmt.T_DELTA, 7), stage=Stage(fmt.S_LZMA, (1, 0, 12, 0))),
                    _c((fmt.T_SPLIT, 3), stage=Stage(fmt.S_STORE))),
        SectionPlan(("c.int4_sym",), _c(stage=Stage(fmt.S_RANGE_STATIC)), STORE),
        SectionPlan(("d.int4_asym",), _c(stage=Stage(fmt.S_RANGE_ADAPTIVE, (6,))), STORE),
        SectionPlan(("e.fp4",), _c((fmt.T_TRANSPOSE, 5), stage=Stage(fmt.S_LZMA, (2, 93, 12, 1))), STORE),
        SectionPlan(("f.fp16",), _c((fmt.T_SPLIT, 2), stage=Stage(fmt.S_ZSTD, (0,)))),
        SectionPlan(("g.raw_u8", ), STORE),
        SectionPlan(("h.raw_i16",), _c((fmt.T_ZIGZAG, 2), stage=Stage(fmt.S_STORE))),
        SectionPlan(("i.raw_f32",), STORE),
    ]


def schema_tensors():
    rng = _rng()
    return {
        "conv.weight": quantize(rng.normal(size=(6, 4, 3, 3)).astype(np.float32), QuantSpec("int8_sym", axis=0)),
        "conv.bias": quantize(rng.normal(size=6).astype(np.float32), QuantSpec("int8_sym")),
        "head.weight": quantize(rng.normal(size=(3, 6)).astype(np.float32), QuantSpec("int8_sym", axis=0)),
        "latents": quantize(rng.laplace(size=(25, 8)).astype(np.float32), QuantSpec("int8_sym")),
    }


def golden_files() -> dict[str, bytes]:
    by_name = encode_archive(named_tensors(), named_plan(), architecture=Architecture(0, {"width": 4, "depth": -2}))
    by_position = write_archive(schema_tensors(), architecture=Architecture(SCHEMA.arch_id), schema=SCHEMA,
                                options=ChooserOptions(contest_safe=True, effort="fast"))
    return {"archive_by_name.tac": by_name, "archive_by_position.tac": by_position,
            "archive.zip": pack_zip(by_position)}


@pytest.fixture(scope="module")
def goldens() -> dict[str, bytes]:
    made = golden_files()
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        for name, data in made.items():
            (GOLDEN / name).write_bytes(data)
    return made


@pytest.mark.parametrize("name", ["archive_by_name.tac", "archive_by_position.tac", "archive.zip"])
def test_writer_output_matches_golden_bytes(goldens, name):
    assert (GOLDEN / name).read_bytes() == goldens[name], f"{name} changed; regenerate with TAC_REGENERATE_GOLDEN=1"


def test_golden_archives_decode_to_the_source_tensors():
    archive = read_archive((GOLDEN / "archive_by_name.tac").read_bytes())
    assert archive.architecture.params == {"depth": -2, "width": 4}
    for name, value in named_tensors().items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(archive.tensors[name], value)
        else:
            assert archive.quantized[name].same_as(value), name
    info = describe((GOLDEN / "archive.zip").read_bytes(), schemas=SCHEMAS)
    assert info["zip_overhead"] == 100 and info["tensors"] == 4
    by_pos = read_archive((GOLDEN / "archive_by_position.tac").read_bytes(), schemas=SCHEMAS)
    for name, q in schema_tensors().items():
        assert by_pos.quantized[name].same_as(q)


def _read_any(data: bytes) -> None:
    """Read a container or zip the way ``tac archive inspect`` does."""
    describe(data, schemas=SCHEMAS)


def _mutations(data: bytes, rng: np.random.Generator, count: int):
    for _ in range(count):
        b = bytearray(data)
        kind = rng.integers(5)
        i = int(rng.integers(len(b)))
        if kind == 0:
            b[i] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            b[i] = int(rng.integers(256))
        elif kind == 2:
            del b[i:i + int(rng.integers(1, 8))]
        elif kind == 3:
            b[i:i] = rng.integers(256, size=int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
        else:
            b[i] = rng.choice([0x00, 0x7F, 0x80, 0xFF])
        yield bytes(b)


@pytest.mark.parametrize("name", ["archive_by_name.tac", "archive_by_position.tac", "archive.zip"])
def test_mutated_goldens_raise_only_archive_errors_quickly(name):
    data = (GOLDEN / name).read_bytes()
    rng = np.random.default_rng(sum(name.encode()))
    for mutated in _mutations(data, rng, 300):
        start = time.perf_counter()
        try:
            _read_any(mutated)
        except ArchiveError:
            pass
        assert time.perf_counter() - start < 1.0


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_the_magic_raise_only_archive_errors(tail):
    for data in (fmt.MAGIC + bytes([fmt.VERSION]) + tail, tail):
        try:
            read_archive(data, schemas=SCHEMAS)
        except ArchiveError:
            pass


def test_every_truncation_of_the_goldens_is_rejected():
    for name in ("archive_by_name.tac", "archive_by_position.tac", "archive.zip"):
        data = (GOLDEN / name).read_bytes()
        for cut in range(len(data)):
            with pytest.raises(ArchiveError):
                _read_any(data[:cut])


# --- hostile inputs --------------------------------------------------------

HEAD = fmt.MAGIC + bytes([fmt.VERSION])


def _by_name(sections: list[bytes], flags=0, arch=b"\x00\x00") -> bytes:
    return HEAD + uvarint(flags) + arch + uvarint(len(sections)) + b"".join(sections)


def _raw_section(name: str, shape, chain: bytes, qid=fmt.Q_RAW, arg=3) -> bytes:
    return (uvarint(qid) + uvarint(arg) + uvarint(1) + text(name) + uvarint(len(shape))
            + b"".join(uvarint(d) for d in shape) + chain)


def _chain(stage: int, args=(), coded=0, transforms=()) -> bytes:
    return (uvarint(stage << fmt.CHAIN_COUNT_BITS | len(transforms))
            + b"".join(uvarint(t) + uvarint(a) for t, a in transforms)
            + b"".join(uvarint(a) for a in args) + uvarint(coded))


def _zip(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def attack_files() -> dict[str, bytes]:
    """Hostile inputs, each with the reason it must be refused in its name."""
    big = 64 << 20
    brotli_bomb = brotli.compress(bytes(big))
    zstd_bomb = zstandard.ZstdCompressor(level=19).compress(bytes(big))
    lzma_bomb = lzma.compress(bytes(big), format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA1, "lc": 0, "lp": 0, "pb": 0, "dict_size": 1 << 16}])
    good = golden_files()["archive_by_name.tac"]
    store = _chain(fmt.S_STORE, coded=4)
    rank8 = _raw_section("x", [1 << 28] * 8, store)
    link = zipfile.ZipInfo("a")
    link.external_attr = (0o120777) << 16
    return {
        "huge_rank8_dims.tac": _by_name([rank8]) + b"\x00" * 4,
        "huge_declared_elements.tac": _by_name([_raw_section("x", [1 << 20, 1 << 20], store)]) + b"\x00" * 4,
        "huge_decoded_total.tac": _by_name([_raw_section(f"t{i}", [1 << 28], _chain(fmt.S_STORE, coded=1))
                                            for i in range(8)]) + b"\x00" * 8,
        "huge_coded_size.tac": _by_name([_raw_section("x", [4], _chain(fmt.S_STORE, coded=1 << 40))]),
        "huge_section_count.tac": HEAD + b"\x00\x00\x00" + uvarint(1 << 30),
        "huge_name_length.tac": HEAD + b"\x00\x00\x00\x01\x01\x03\x01" + uvarint(1 << 20) + b"x" * 16,
        "brotli_bomb.tac": _by_name([_raw_section("x", [1000], _chain(fmt.S_BROTLI, coded=len(brotli_bomb)))])
        + brotli_bomb,
        "zstd_bomb.tac": _by_name([_raw_section("x", [1000], _chain(fmt.S_ZSTD, (0,), coded=len(zstd_bomb)))])
        + zstd_bomb,
        "lzma_bomb.tac": _by_name([_raw_section("x", [1000], _chain(fmt.S_LZMA, (1, 0, 16, 0),
                                                                    coded=len(lzma_bomb)))]) + lzma_bomb,
        "lzma_huge_dictionary.tac": _by_name([_raw_section("x", [4], _chain(fmt.S_LZMA, (1, 0, 31, 0),
                                                                            coded=4))]) + b"\x00" * 4,
        "grouped_layout_mismatch.tac": _by_name([_raw_section("x", [100], _chain(fmt.S_RANGE_GROUPED, (1, 1),
                                                                                  coded=5))])
        + uvarint(1) + uvarint(1) + uvarint(99) + b"\x00\x00",
        "grouped_huge_group_count.tac": _by_name([_raw_section("x", [100], _chain(fmt.S_RANGE_GROUPED, (2, 1),
                                                                                   coded=8))])
        + uvarint(1) + uvarint(1 << 30) + uvarint(1) + b"\x00",
        "repeated_section.tac": _by_name([_raw_section("x", [4], store)] * 2) + b"\x00" * 8,
        "repeated_tensor_in_section.tac": HEAD + b"\x00\x00\x00\x01" + uvarint(fmt.Q_RAW) + uvarint(3) + uvarint(2)
        + (text("x") + uvarint(1) + uvarint(2)) * 2 + store + b"\x00" * 4,
        "sections_out_of_order.tac": _by_name([_raw_section("y", [4], store), _raw_section("x", [4], store)])
        + b"\x00" * 8,
        "overlapping_positions.tac": HEAD + uvarint(1) + uvarint(SCHEMA.arch_id) + b"\x00" + uvarint(1) + uvarint(2)
        + uvarint(2) + b"".join(uvarint(fmt.Q_RAW) + uvarint(3) + uvarint(1) + uvarint(1 << 1)
                               + _chain(fmt.S_STORE, coded=6) for _ in range(2)) + b"\x00" * 12,
        "position_outside_schema.tac": HEAD + uvarint(1) + uvarint(SCHEMA.arch_id) + b"\x00" + uvarint(1)
        + uvarint(2) + uvarint(1) + uvarint(fmt.Q_RAW) + uvarint(3) + uvarint(3) + uvarint(5 << 1)
        + _chain(fmt.S_STORE, coded=1) + b"\x00",
        "trailing_bytes.tac": good + b"\x00",
        "truncated_payload.tac": good[:-1],
        "truncated_header.tac": good[:12],
        "unknown_version.tac": fmt.MAGIC + b"\x02" + good[5:],
        "unknown_flags.tac": HEAD + b"\x04" + good[6:],
        "params_by_position_without_schema.tac": HEAD + b"\x02" + good[6:],
        "unknown_stage.tac": _by_name([_raw_section("x", [4], _chain(42, coded=4))]) + b"\x00" * 4,
        "unknown_quantizer.tac": _by_name([_raw_section("x", [4], store, qid=99)]) + b"\x00" * 4,
        "non_minimal_varint.tac": HEAD + b"\x80\x00" + good[6:],
        "int8_code_minus_128.tac": _by_name([_raw_section("x", [2], _chain(fmt.S_STORE, coded=2)
                                                          + _chain(fmt.S_STORE, coded=2), qid=fmt.Q_INT8_SYM, arg=0)])
        + b"\x80\x01\x00\x3c",
        "nan_scale.tac": _by_name([_raw_section("x", [2], _chain(fmt.S_STORE, coded=2)
                                                + _chain(fmt.S_STORE, coded=2), qid=fmt.Q_INT8_SYM, arg=0)])
        + b"\x01\x01\x00\x7e",
        "nonzero_padding_nibble.tac": _by_name([_raw_section("x", [1], _chain(fmt.S_STORE, coded=1)
                                                             + _chain(fmt.S_STORE, coded=2), qid=fmt.Q_INT4_SYM,
                                                             arg=0)]) + b"\x11\x00\x3c",
        "transform_length_mismatch.tac": _by_name([_raw_section("x", [5], _chain(fmt.S_STORE, coded=5,
                                                                                   transforms=[(fmt.T_SPLIT, 2)]))])
        + b"\x00" * 5,
        "bad_utf8_name.tac": HEAD + b"\x00\x00\x00\x01\x01\x03\x01\x02\xff\xfe\x01\x01" + store + b"\x00",
        "bad_parameter_order.tac": HEAD + b"\x00\x00\x02" + text("b") + svarint(1) + text("a") + svarint(1)
        + b"\x01" + _raw_section("x", [1], _chain(fmt.S_STORE, coded=1)) + b"\x00",
        "zip_path_traversal.zip": _zip([("../a", good)]),
        "zip_absolute_path.zip": _zip([("/tmp/a", good)]),
        "zip_two_members.zip": _zip([("a", good), ("b", good)]),
        "zip_symlink.zip": _zip([(link, b"/etc/passwd")]),
        "zip_garbage.zip": b"PK\x03\x04" + bytes(range(200)),
    }


def test_attack_folder_is_current():
    made = attack_files()
    if REGENERATE:
        ATTACKS.mkdir(exist_ok=True)
        for name, data in made.items():
            (ATTACKS / name).write_bytes(data)
    on_disk = {p.name for p in ATTACKS.iterdir() if p.suffix in (".tac", ".zip")}
    assert on_disk == set(made), "tests/attacks/ is stale; regenerate with TAC_REGENERATE_GOLDEN=1"


@pytest.mark.parametrize("path", sorted(p for p in ATTACKS.glob("*") if p.suffix in (".tac", ".zip")),
                         ids=lambda p: p.name)
def test_hostile_inputs_are_refused_quickly(path):
    start = time.perf_counter()
    with pytest.raises(ArchiveError):
        _read_any(path.read_bytes())
    assert time.perf_counter() - start < 1.0
