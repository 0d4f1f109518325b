"""The hnerv_pair renderer: spec as data, shapes, parameter count, determinism, archive id."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core import registry  # noqa: E402
from tac_core.archive import QuantSpec, quantize, read_archive, write_archive  # noqa: E402
from tac_core.archive.format import ARCH_HNERV_PAIR_V1  # noqa: E402
from tac_core.errors import ArchiveError, InputError, WeightsError  # noqa: E402
from tac_torch.renderers import (HNERV_PAIR_DEFAULT, HnervPair, architecture,  # noqa: E402
                                 archive_schema, init_latents, make_spec, param_count, spec_id,
                                 tensor_shapes)

SMALL = make_spec(stages=2, out_h=24, out_w=32, width_0=8, width_1=8, width_2=6, latent_dim=5)


def test_default_parameter_count():
    n = param_count()
    print(f"hnerv_pair default: {n} parameters")
    assert 200_000 <= n <= 260_000
    assert n == sum(p.numel() for p in HnervPair().parameters())
    assert HNERV_PAIR_DEFAULT["latent_dim"] == 28


def test_default_renders_pairs_at_model_size():
    net = HnervPair(seed=0)
    with torch.inference_mode():
        out = net.render_pairs(init_latents(1))
    assert out.shape == (1, 2, 3, 384, 512) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 255


def test_spec_round_trip_and_determinism():
    a = HnervPair(SMALL, seed=3)
    b = HnervPair.from_arrays(dict(a.spec), a.arrays())
    assert list(a.state_dict()) == list(b.state_dict()) == list(tensor_shapes(SMALL))
    assert {k: tuple(v.shape) for k, v in a.state_dict().items()} == tensor_shapes(SMALL)
    z = init_latents(3, SMALL, seed=1)
    with torch.inference_mode():
        assert torch.equal(a(z), b(z)) and torch.equal(a(z), a(z))
    assert torch.equal(HnervPair(SMALL, seed=3).stem.weight, a.stem.weight)
    assert a(z).shape == (3, 2, 3, 24, 32)


def test_bad_specs_and_inputs_are_typed_errors():
    for bad in ({**SMALL, "out_h": 30}, {**SMALL, "extra": 1}, {**SMALL, "width_1": 0},
                {k: v for k, v in SMALL.items() if k != "width_2"}, {**SMALL, "stages": 0},
                {**SMALL, "latent_dim": 2.5}, "spec"):
        with pytest.raises(InputError):
            HnervPair(bad)
    with pytest.raises(InputError):
        HnervPair(SMALL)(torch.zeros(2, 4))
    with pytest.raises(WeightsError):
        HnervPair.from_arrays(SMALL, {"stem.weight": np.zeros((1, 1), np.float32)})


def test_archive_architecture_and_schema_round_trip():
    assert spec_id() == spec_id(SMALL) == ARCH_HNERV_PAIR_V1
    for spec in (SMALL, make_spec(width_0=2, width_1=2, width_2=2, width_3=2, width_4=2, width_5=2, width_6=2,
                                  out_h=64, out_w=128, latent_dim=3)):
        schema = archive_schema(spec)                   # one schema, whatever the topology
        assert schema.arch_id == ARCH_HNERV_PAIR_V1
        net = HnervPair(spec, seed=0)
        tensors = {k: quantize(v, QuantSpec("int8_sym")) for k, v in net.arrays().items()}
        tensors["latents"] = quantize(init_latents(4, spec).numpy(), QuantSpec("int8_sym"))
        data = write_archive(tensors, architecture=architecture(spec, 7), schema=schema)
        back = read_archive(data)
        assert back.by_position and back.architecture.id == ARCH_HNERV_PAIR_V1
        assert dict(back.architecture.params) == {**spec, "frames": 7}
        rebuilt = HnervPair.from_arrays(spec, back.tensors)
        assert list(rebuilt.state_dict()) == list(net.state_dict())
        with pytest.raises(ArchiveError, match="shape"):    # a tensor that does not fit the layout
            write_archive(tensors, architecture=architecture(spec, 9), schema=schema)


def test_registered_renderer_matches_interface():
    renderer = registry.get("renderers", "hnerv_pair").factory(spec=SMALL)
    net = HnervPair(SMALL, seed=0)
    lat = init_latents(3, SMALL).numpy()
    pairs = renderer.render(net.arrays(), {"latents": lat}, [2, 0])
    assert pairs.shape == (2, 2, 874, 1164, 3) and pairs.dtype == np.uint8
    assert renderer.spec["renderer_id"] == ARCH_HNERV_PAIR_V1
