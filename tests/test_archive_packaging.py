"""archive.zip: deterministic packing, safe unpacking, and the archive commands."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest

from tac_core.archive import PackagingError, QuantSpec, pack_zip, quantize, read_archive, read_zip_member, \
    unpack_zip, write_archive, ChooserOptions
from tac_core.cli.main import main


def _container() -> bytes:
    rng = np.random.default_rng(0)
    return write_archive({"w": quantize(rng.laplace(size=(8, 4, 3, 3)).astype(np.float32),
                                        QuantSpec("int8_sym", axis=0)),
                          "lat": quantize(rng.normal(size=(30, 28)).astype(np.float32), QuantSpec("int8_sym"))},
                         options=ChooserOptions(effort="fast"))


def _zip(entries, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def test_zip_is_deterministic_minimal_and_readable_by_zipfile():
    c = _container()
    z = pack_zip(c)
    assert z == pack_zip(c) and len(z) - len(c) == 100
    with zipfile.ZipFile(io.BytesIO(z)) as zf:
        (info,) = zf.infolist()
        assert info.filename == "a" and info.date_time == (1980, 1, 1, 0, 0, 0) and info.extra == b""
        assert zf.read(info) == c
    assert read_zip_member(z) == ("a", c)


def test_zip_deflates_only_when_smaller():
    compressible = bytes(5000)
    with zipfile.ZipFile(io.BytesIO(pack_zip(compressible))) as zf:
        assert zf.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(io.BytesIO(pack_zip(_container()))) as zf:
        assert zf.infolist()[0].compress_type == zipfile.ZIP_STORED


def _link(name="a"):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("entries,match", [
    ([("../evil", b"x")], "unsafe"),
    ([("/etc/passwd", b"x")], "unsafe"),
    ([("C:/x", b"x")], "unsafe"),
    ([("a", b"x"), ("b", b"y")], "exactly one"),
    ([("dir/", b"")], "unsafe"),
    ([(_link(), b"target")], "link"),
], ids=["traversal", "absolute", "drive", "two-members", "folder", "symlink"])
def test_unsafe_zips_are_refused(entries, match, tmp_path):
    data = _zip(entries)
    with pytest.raises(PackagingError, match=match):
        read_zip_member(data)
    with pytest.raises(PackagingError):
        unpack_zip(data, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_oversized_members_are_refused():
    data = _zip([("a", bytes(10_000))], zipfile.ZIP_DEFLATED)
    with pytest.raises(PackagingError, match="cap"):
        read_zip_member(data, max_bytes=1000)
    # a member that lies about its size (declares 10 bytes, inflates to 10 kB) is refused too
    lying = bytearray(data)
    lying[22:26] = (10).to_bytes(4, "little")
    cd = lying.index(b"PK\x01\x02")
    lying[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(PackagingError):
        read_zip_member(bytes(lying), max_bytes=1000)


def test_unpack_writes_the_member(tmp_path):
    c = _container()
    path = unpack_zip(pack_zip(c), tmp_path)
    assert path == tmp_path / "a" and path.read_bytes() == c


def test_inspect_reports_sections_and_overheads(tmp_path, capsys):
    z = tmp_path / "archive.zip"
    z.write_bytes(pack_zip(_container()))
    assert main(["archive", "inspect", str(z)]) == 0
    out = capsys.readouterr().out
    assert "int8_sym(axis 0)" in out and "zip overhead" in out and "overhead" in out


def test_repack_is_never_larger_and_keeps_tensors(tmp_path, capsys):
    src = tmp_path / "in.tac"
    c = _container()
    src.write_bytes(c)
    out = tmp_path / "out.zip"
    assert main(["archive", "repack", str(src), "-o", str(out), "--contest-safe", "--effort", "fast"]) == 0
    member = read_zip_member(out.read_bytes())[1]
    assert len(member) <= len(c)
    before, after = read_archive(c), read_archive(member)
    assert all(after.quantized[n].same_as(q) for n, q in before.quantized.items())
    assert all(s.codes_chain.stage.id != 1 for s in after.sections)


@pytest.mark.parametrize("payload", [b"", b"\x89TAC\x01", b"PK\x03\x04junk", b"\x89TAC\x01\x00\x00\x00\x01\x10"])
def test_malformed_files_give_one_line_and_exit_code_2(payload, tmp_path, capsys):
    bad = tmp_path / "bad.tac"
    bad.write_bytes(payload)
    for argv in (["archive", "inspect", str(bad)], ["archive", "repack", str(bad), "-o", str(tmp_path / "o")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tac: error:") and "Traceback" not in err
    assert not (tmp_path / "o").exists()
