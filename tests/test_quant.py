"""Fake quantisation equals the archive's quantizers bit for bit, with a straight-through gradient."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core.archive import QuantSpec, QuantizationError, dequantize, quantize  # noqa: E402
from tac_torch.quant import fake_quantize, fake_quantized_params, quantize_values, up16, weight_specs  # noqa: E402

CASES = [(kind, axis) for kind in ("int8_sym", "int8_asym", "int4_sym", "int4_asym") for axis in (None, 0, 2)]


def _tensors(seed: int):
    gen = torch.Generator().manual_seed(seed)
    for i in range(12):
        x = torch.randn(6, 4, 5, generator=gen) * float(10 ** torch.empty(1).uniform_(-4, 2, generator=gen))
        if i % 3 == 0:
            x[2] = 0                      # an all-zero channel: scale 0
        if i % 4 == 1:
            x = x.abs()                   # one-signed: asymmetric zero point at an end
        if i % 5 == 2:
            x = torch.round(x * 4) / 4    # exact halves: ties round to even
        yield x


@pytest.mark.parametrize("kind,axis", CASES)
def test_fake_quant_equals_archive_quantizer_bit_for_bit(kind, axis):
    spec = QuantSpec(kind, axis=axis)
    for x in _tensors(hash((kind, axis)) % 1000):
        ours = fake_quantize(x, spec).numpy()
        ref = dequantize(quantize(x.numpy(), spec))
        assert ours.dtype == ref.dtype == np.float32
        assert ours.tobytes() == ref.tobytes()


def test_fp16_and_raw():
    x = torch.randn(33) * 1000
    assert fake_quantize(x, QuantSpec("fp16")).numpy().tobytes() == dequantize(
        quantize(x.numpy(), QuantSpec("fp16"))).tobytes()
    assert fake_quantize(x, QuantSpec("raw")) is x


def test_straight_through_gradient_is_identity():
    x = (torch.randn(8, 3) * 3).requires_grad_(True)
    for spec in (QuantSpec("int8_sym", axis=0), QuantSpec("int8_asym"), QuantSpec("int4_sym", axis=1)):
        x.grad = None
        w = torch.randn(8, 3)
        (fake_quantize(x, spec) * w).sum().backward()
        assert torch.equal(x.grad, w)


def test_up16_matches_numpy_and_refuses_overflow():
    v = torch.tensor([0.0, 1e-9, 1e-5, 0.1, 1.0, 3.14159, 6e4])
    from tac_core.archive.quantizers import up16 as up16_np
    assert up16(v).numpy().tobytes() == up16_np(v.numpy()).astype(np.float32).tobytes()
    with pytest.raises(QuantizationError):
        up16(torch.tensor([7e4]))


def test_errors_are_typed():
    with pytest.raises(QuantizationError):
        fake_quantize(torch.tensor([1.0, float("nan")]), QuantSpec("int8_sym"))
    with pytest.raises(QuantizationError):
        fake_quantize(torch.ones(2, 2), QuantSpec("int8_sym", axis=3))
    with pytest.raises(QuantizationError):
        quantize_values(torch.ones(40), QuantSpec("fp4_e2m1"))
    with pytest.raises(QuantizationError):
        fake_quantize(torch.ones(2), "int8_sym")


def test_module_params_quantised_for_functional_call():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    specs = weight_specs(net)
    assert specs["0.weight"] == QuantSpec("int8_sym", axis=0) and specs["0.bias"] == QuantSpec("int8_sym")
    params = fake_quantized_params(net, specs)
    for name, p in net.named_parameters():
        expected = dequantize(quantize(p.detach().numpy(), specs[name]))
        assert params[name].detach().numpy().tobytes() == expected.tobytes()
    out = torch.func.functional_call(net, params, (torch.randn(5, 4),))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(QuantizationError):
        fake_quantized_params(net, {"nope": QuantSpec("int8_sym")})


def test_unchecked_quantisation_gives_the_same_values_and_lets_non_finite_through():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 9, generator=gen)
    for spec in (QuantSpec("int4_sym", axis=0), QuantSpec("int8_asym"), QuantSpec("fp16")):
        assert torch.equal(quantize_values(x, spec, checked=False), quantize_values(x, spec))
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(QuantizationError):
        quantize_values(bad, QuantSpec("int8_sym"))
    assert not torch.isfinite(quantize_values(bad, QuantSpec("int8_sym"), checked=False)).all()
    assert torch.isinf(up16(torch.tensor([7e4]), checked=False)).all()


def test_fake_quantized_params_equal_fake_quantize_tensor_by_tensor():
    gen = torch.Generator().manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.Conv2d(5, 4, 1), torch.nn.Linear(4, 6))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        net[0].weight[2] = 0.0                                   # a channel of zeros: scale 0
    names = dict(net.named_parameters())
    specs = {"0.weight": QuantSpec("int4_sym", axis=0), "1.weight": QuantSpec("int4_sym", axis=0),
             "2.weight": QuantSpec("int8_asym", axis=1), "0.bias": QuantSpec("int8_sym"),
             "1.bias": QuantSpec("int8_sym"), "2.bias": QuantSpec("fp16")}
    together = fake_quantized_params(net, specs)
    for name, spec in specs.items():
        assert together[name].shape == names[name].shape
        assert torch.equal(together[name], fake_quantize(names[name], spec)), name
    sum((t * (i + 1)).sum() for i, t in enumerate(together.values())).backward()
    for i, p in enumerate(names.values()):                  # straight through: d/dp = the weight i + 1
        assert torch.equal(p.grad, torch.full_like(p, float(i + 1)))
    with pytest.raises(QuantizationError):
        fake_quantized_params(net, {"0.weight": QuantSpec("int8_sym", axis=5)})
