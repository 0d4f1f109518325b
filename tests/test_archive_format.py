"""Container round trips, canonical bytes, the compact header, and the reader's rejections."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tac_core.archive import (Architecture, ArchiveError, Chain, ChooserOptions, MalformedArchiveError,
                              QuantSpec, SectionPlan, Stage, TensorSchema,
                              UnknownIdError, encode_archive, quantize, read_archive, write_archive)
from tac_core.archive import format as fmt
from tac_core.archive.varint import Cursor, svarint, uvarint

ARCHIVE_DIR = Path(__file__).resolve().parent.parent / "tac_core" / "archive"
STORE = Chain((), Stage(fmt.S_STORE))
FAST = ChooserOptions(effort="fast", stages=("store", "range_static", "lzma"))


def decoder_tensors(seed: int = 0, pairs: int = 600, layers: int = 20):
    """A small stand-in decoder: ``layers`` conv weights and biases plus per-pair latents."""
    rng = np.random.default_rng(seed)
    out, schema = {}, []
    for i in range(layers):
        cout, cin = 8 + i % 3, 8
        w = rng.laplace(scale=0.05, size=(cout, cin, 3, 3)).astype(np.float32)
        out[f"dec.{i:02d}.weight"] = quantize(w, QuantSpec("int8_sym", axis=0))
        schema.append((f"dec.{i:02d}.weight", (cout, cin, 3, 3)))
    for i in range(layers):
        cout = 8 + i % 3
        out[f"dec.{i:02d}.bias"] = quantize(rng.normal(0, 0.01, cout).astype(np.float32), QuantSpec("int8_sym"))
        schema.append((f"dec.{i:02d}.bias", (cout,)))
    out["latents"] = quantize(rng.laplace(size=(pairs, 28)).astype(np.float32), QuantSpec("int8_sym"))
    schema.append(("latents", (None, 28)))
    return out, TensorSchema(fmt.PRIVATE_ARCH_START + 1, tuple(schema))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, (1 << 64) - 1), st.integers(-(1 << 63), (1 << 63) - 1))
def test_varints_round_trip(u, s):
    assert Cursor(uvarint(u)).uvarint("u") == u
    assert Cursor(svarint(s)).svarint("s") == s


@pytest.mark.parametrize("raw", [b"\x80\x00", b"\xff" * 11, b"\x80", b"\xff" * 9 + b"\x02"])
def test_bad_varints_are_rejected(raw):
    with pytest.raises(ArchiveError):
        Cursor(raw).uvarint("v")


def test_round_trip_by_name_keeps_codes_and_values():
    tensors, _ = decoder_tensors(pairs=30, layers=4)
    tensors["class_map"] = np.arange(24, dtype=np.uint8).reshape(4, 6)
    archive = read_archive(write_archive(tensors, options=FAST))
    assert set(archive.quantized) == set(tensors)
    for name, q in tensors.items():
        if isinstance(q, np.ndarray):
            assert archive.tensors[name].dtype == q.dtype and np.array_equal(archive.tensors[name], q)
        else:
            assert archive.quantized[name].same_as(q)
            assert archive.tensors[name].dtype == np.float32


def test_same_content_gives_same_bytes_whatever_the_order():
    tensors, schema = decoder_tensors(pairs=20, layers=3)
    arch = Architecture(0, {"width": 8, "depth": 3, "a": -1})
    forward = write_archive(tensors, architecture=arch, options=FAST)
    backward = write_archive(dict(reversed(list(tensors.items()))),
                             architecture=Architecture(0, {"depth": 3, "a": -1, "width": 8}), options=FAST)
    assert forward == backward
    arch2 = Architecture(schema.arch_id)
    assert write_archive(tensors, architecture=arch2, schema=schema, options=FAST) == \
        write_archive(dict(reversed(list(tensors.items()))), architecture=arch2, schema=schema, options=FAST)
    assert read_archive(forward).architecture.params == {"a": -1, "depth": 3, "width": 8}


def test_registered_schema_keeps_the_container_overhead_under_64_bytes():
    tensors, schema = decoder_tensors()
    assert len(tensors) == 41
    data = write_archive(tensors, architecture=Architecture(schema.arch_id), schema=schema, options=FAST)
    archive = read_archive(data, schemas={schema.arch_id: schema})
    assert archive.by_position and archive.overhead <= 64, archive.overhead
    assert archive.quantized["latents"].shape == (600, 28)
    for name, q in tensors.items():
        assert archive.quantized[name].same_as(q)


def test_schema_mode_needs_the_schema():
    tensors, schema = decoder_tensors(pairs=4, layers=1)
    data = write_archive(tensors, architecture=Architecture(schema.arch_id), schema=schema, options=FAST)
    with pytest.raises(UnknownIdError):
        read_archive(data)


def _small():
    return {"a": quantize(np.linspace(-1, 1, 12, dtype=np.float32), QuantSpec("int8_sym")),
            "b": np.arange(5, dtype=np.int16)}


def _plan():
    return [SectionPlan(("a",), STORE, STORE), SectionPlan(("b",), STORE)]


def test_explicit_plan_is_followed_and_reported():
    archive = read_archive(encode_archive(_small(), _plan()))
    assert [s.names for s in archive.sections] == [("a",), ("b",)]
    assert archive.sections[0].codes_raw == 12 and archive.sections[0].params_raw == 2
    assert archive.sections[1].codes_raw == 10 and archive.sections[1].params_chain is None


def test_trailing_bytes_are_rejected():
    with pytest.raises(MalformedArchiveError, match="trailing"):
        read_archive(encode_archive(_small(), _plan()) + b"\x00")


def test_truncation_anywhere_is_rejected():
    data = encode_archive(_small(), _plan())
    for cut in range(len(data)):
        with pytest.raises(ArchiveError):
            read_archive(data[:cut])


def test_wrong_magic_and_version_are_rejected():
    data = encode_archive(_small(), _plan())
    with pytest.raises(MalformedArchiveError, match="magic"):
        read_archive(b"PK\x03\x04" + data[4:])
    with pytest.raises(UnknownIdError, match="version"):
        read_archive(data[:4] + b"\x02" + data[5:])


def test_non_canonical_section_order_is_rejected():
    data = encode_archive(_small(), _plan())
    sections = read_archive(data).sections
    # swap the two section records and their payloads by re-encoding in the other order by hand
    store = bytes([fmt.S_STORE << fmt.CHAIN_COUNT_BITS])     # no transforms, the store stage
    hdr_a = uvarint(16) + uvarint(0) + uvarint(1) + b"\x01a" + uvarint(1) + uvarint(12) + \
        store + uvarint(12) + store + uvarint(2)
    hdr_b = uvarint(1) + uvarint(6) + uvarint(1) + b"\x01b" + uvarint(1) + uvarint(5) + store + uvarint(10)
    head = fmt.MAGIC + bytes([1]) + uvarint(0) + uvarint(0) + uvarint(0) + uvarint(2)
    a_pay = data[-(12 + 2 + 10):-10]
    b_pay = data[-10:]
    good = head + hdr_a + hdr_b + a_pay + b_pay
    assert good == data and len(sections) == 2
    with pytest.raises(MalformedArchiveError, match="order"):
        read_archive(head + hdr_b + hdr_a + b_pay + a_pay)
    dup = head + hdr_a + hdr_a + a_pay + a_pay
    with pytest.raises(MalformedArchiveError):
        read_archive(dup)


def test_reader_imports_nothing_outside_the_archive_but_errors():
    for path in ARCHIVE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for m in mods:
                if m.startswith("tac_core"):
                    assert m.startswith("tac_core.archive") or m == "tac_core.errors", (path.name, m)
                assert m.split(".")[0] not in ("torch", "jax", "mlx", "pickle"), (path.name, m)


def test_reading_needs_no_zstandard_unless_a_zstd_stage_is_present():
    code = ("import sys; sys.modules['zstandard'] = None\n"
            "import numpy as np\n"
            "from tac_core.archive import *\n"
            "t = {'x': np.arange(100, dtype=np.int32) % 7}\n"
            "data = write_archive(t)\n"
            "assert read_archive(data).tensors['x'].sum() == t['x'].sum()\n"
            "z = encode_archive(t, [SectionPlan(('x',), Chain((), Stage(1, (0,))))])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "zstandard package is not installed" in done.stderr, done.stderr
    ok = subprocess.run([sys.executable, "-c", "import sys; import tac_core.archive; "
                         "assert 'zstandard' not in sys.modules and 'torch' not in sys.modules"])
    assert ok.returncode == 0
