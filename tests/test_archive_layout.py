"""Renderer archives name tensors and parameters by position in a layout computed from the parameters."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core.architectures import hnerv_pair, mask_warp  # noqa: E402
from tac_core.archive import (ArchiveLimitError, MalformedArchiveError, QuantSpec, quantize,  # noqa: E402
                              read_archive, write_archive)
from tac_core.archive import format as fmt  # noqa: E402
from tac_core.archive.varint import svarint, text, uvarint  # noqa: E402
from tac_torch.export import build_archive, read_model  # noqa: E402
from tac_torch.renderers import HnervPair  # noqa: E402

HEAD = fmt.MAGIC + bytes([fmt.VERSION])
BOTH = fmt.FLAG_BY_POSITION | fmt.FLAG_PARAMS_BY_POSITION


def trained_like(spec: dict, seed: int = 0) -> HnervPair:
    """A decoder with Laplace weights: trained weights' heavy tails, not an initialiser's uniform draw."""
    net = HnervPair(spec, seed=seed)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.laplace(scale=0.05, size=tuple(p.shape)).astype(np.float32)))
    return net


def test_contest_size_hnerv_archive_spends_at_most_64_header_bytes():
    spec = hnerv_pair.make_spec()                   # ~230k parameters, 28-d latents
    net = trained_like(spec)
    latents = torch.from_numpy(np.random.default_rng(1).laplace(size=(600, 28)).astype(np.float32))
    data = build_archive(net, latents, 1200)
    archive = read_archive(data)
    assert len(archive.quantized) == len(hnerv_pair.tensor_shapes(spec)) + 1 == 29
    assert archive.by_position and archive.overhead <= 64, archive.overhead
    assert b"latent_dim" not in data[:archive.overhead]          # no names in the header
    # the default spec's parameters cost nothing: the mask marks the frame count alone
    count = len(spec) + 1
    assert data[len(HEAD):].startswith(uvarint(BOTH) + uvarint(hnerv_pair.SPEC_ID) + uvarint(count)
                                       + uvarint(0b1) + svarint(1200) + uvarint(len(archive.sections)))
    assert dict(archive.architecture.params) == {**spec, "frames": 1200}
    back = read_model(data)
    assert back.frames == 1200 and back.latents.shape == (600, 28) and back.output_bias is None


def test_sidecar_and_small_topologies_stay_by_position():
    spec = hnerv_pair.make_spec(stages=2, out_h=8, out_w=12, latent_dim=3)
    net = trained_like(spec)
    bias = torch.zeros(3, 2, 3, dtype=torch.int8)
    bias[1, 0, 2] = -5
    data = build_archive(net, torch.randn(3, 3), 5, output_bias=bias)
    archive = read_archive(data)
    assert archive.by_position
    assert torch.equal(read_model(data).output_bias, bias)


def _params(count: int, mask: int, values: list[int], arch=hnerv_pair.SPEC_ID, flags=BOTH) -> bytes:
    return (HEAD + uvarint(flags) + uvarint(arch) + uvarint(count) + uvarint(mask)
            + b"".join(svarint(v) for v in values) + b"\x00" * 8)


@pytest.mark.parametrize("data, match", [
    (_params(0, 0, []), "parameters by position"),
    (_params(len(hnerv_pair.PARAMS) + 1, 1, [4]), "parameters by position"),
    (_params(2, 0b100, [4]), "beyond the count"),
    (_params(2, 0b10, [4]), "no default"),                           # frames has no default
    (_params(2, 0b11, [4, 28]), "repeats its default"),              # latent_dim 28 is the default
    (_params(6, 0b010001, [4, 9]), "do not describe"),                # stages 9: not an hnerv_pair
    (_params(6, 0b1, [4], flags=fmt.FLAG_PARAMS_BY_POSITION), "need tensors by position"),
    (_params(2, 0b1, [4], arch=mask_warp.SPEC_ID), "do not describe"),  # widths missing
])
def test_bad_positional_parameters_are_refused(data, match):
    with pytest.raises(MalformedArchiveError, match=match):
        read_archive(data)


def test_a_layout_too_big_for_the_caps_is_refused_before_allocating():
    # stages 1, out_h = out_w = 2^20: the stem alone declares width_0 x 2^38 elements
    data = _params(8, 0b111101, [4, 1 << 20, 1 << 20, 1, 0])
    with pytest.raises(ArchiveLimitError):
        read_archive(data)


def test_named_parameters_the_schema_orders_are_not_canonical():
    spec = hnerv_pair.make_spec(stages=1, out_h=2, out_w=2, width_0=2, width_1=2, latent_dim=2)
    net = trained_like(spec)
    tensors = {k: quantize(v, QuantSpec("raw")) for k, v in net.arrays().items()}
    tensors["latents"] = quantize(np.zeros((1, 2), np.float32), QuantSpec("raw"))
    good = write_archive(tensors, architecture=hnerv_pair.architecture(spec, 2),
                         schema=hnerv_pair.archive_schema(spec))
    archive = read_archive(good)
    params = dict(archive.architecture.params)
    named = b"".join(text(k) + svarint(params[k]) for k in sorted(params, key=str.encode))
    # the same archive with flag bit 1 clear and the parameters written by name
    assert good[len(HEAD):len(HEAD) + 3] == uvarint(BOTH) + uvarint(hnerv_pair.SPEC_ID) + uvarint(len(params))
    rest = _skip_positional(good[len(HEAD) + 3:])
    bad = HEAD + uvarint(fmt.FLAG_BY_POSITION) + uvarint(hnerv_pair.SPEC_ID) + uvarint(len(params)) + named + rest
    with pytest.raises(MalformedArchiveError, match="not canonical"):
        read_archive(bad)


def _skip_positional(data: bytes) -> bytes:
    """``data`` (starting at the mask) without the mask and the non-default values."""
    from tac_core.archive.varint import Cursor

    cur = Cursor(data)
    mask = cur.uvarint("mask")
    for _ in range(bin(mask).count("1")):
        cur.svarint("value")
    return data[cur.pos:]


def test_header_mutations_raise_archive_errors_only():
    from tac_core.archive import ArchiveError

    spec = hnerv_pair.make_spec(stages=2, out_h=8, out_w=12, latent_dim=3, width_0=3, width_1=4, width_2=5)
    data = build_archive(trained_like(spec), torch.randn(3, 3), 6, output_bias=torch.ones(3, 2, 3, dtype=torch.int8))
    header = read_archive(data).overhead
    rng = np.random.default_rng(7)
    for pos in range(len(HEAD), header):
        for bit in rng.choice(8, 3, replace=False):
            bad = bytearray(data)
            bad[pos] ^= 1 << int(bit)
            try:
                read_archive(bytes(bad))
            except ArchiveError:
                pass
