"""Reference quantizers: error bounds, code ranges, packing, and the exact FP4 rounding rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tac_core.archive import QuantSpec, QuantizationError, dequantize, quantize
from tac_core.archive.streams import codes_from_bytes, codes_to_bytes, params_from_bytes, params_to_bytes
from tac_core.archive.quantizers import up16

SETTINGS = settings(max_examples=50, deadline=None)
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9), elements=finite)
INT_KINDS = ["int8_sym", "int8_asym", "int4_sym", "int4_asym"]


def _step(q):
    """The scale that applies to each element, broadcast to the tensor."""
    s = q.scales.astype(np.float32)
    if q.spec.kind == "fp4_e2m1":
        return np.repeat(s, q.spec.block)[:q.codes.size].reshape(q.shape)
    if q.spec.axis is None:
        return np.full(q.shape, s[0])
    shape = [1] * q.codes.ndim
    shape[q.spec.axis] = -1
    return np.broadcast_to(s.reshape(shape), q.shape)


@SETTINGS
@given(arrays, st.sampled_from(INT_KINDS), st.booleans())
def test_integer_error_is_at_most_half_a_step(x, kind, per_channel):
    spec = QuantSpec(kind, axis=x.ndim - 1 if per_channel else None)
    q = quantize(x, spec)
    err = np.abs(dequantize(q) - x)
    assert np.all(err <= _step(q) * 0.5 * (1 + 1e-3) + 1e-30)


@SETTINGS
@given(arrays)
def test_fp4_error_is_at_most_one_step(x):
    q = quantize(x, QuantSpec("fp4_e2m1"))
    assert q.scales.size == -(-x.size // 32)
    err = np.abs(dequantize(q) - x)
    assert np.all(err <= _step(q) * (1 + 1e-3) + 1e-30)


@SETTINGS
@given(arrays, st.sampled_from(INT_KINDS + ["fp4_e2m1", "fp16"]))
def test_stored_bytes_round_trip_exactly(x, kind):
    q = quantize(x, QuantSpec(kind))
    codes = codes_from_bytes(q.spec, q.shape, codes_to_bytes(q), "t")
    assert codes.dtype == q.codes.dtype and np.array_equal(codes, q.codes)
    if q.spec.has_params:
        scales, zeros = params_from_bytes(q.spec, q.shape, params_to_bytes(q), "t")
        assert np.array_equal(scales, q.scales)
        assert (zeros is None) == (q.zero_points is None)


@pytest.mark.parametrize("kind,lo,hi", [("int8_sym", -127, 127), ("int8_asym", 0, 255),
                                         ("int4_sym", -7, 7), ("int4_asym", 0, 15), ("fp4_e2m1", 0, 15)])
def test_codes_stay_in_range(kind, lo, hi):
    x = np.random.default_rng(1).standard_cauchy((40, 33)).astype(np.float32)
    q = quantize(x, QuantSpec(kind))
    assert q.codes.min() >= lo and q.codes.max() <= hi


def test_symmetric_int8_hits_both_ends_and_zero_stays_zero():
    x = np.array([-2.0, 0.0, 1.0, 2.0], dtype=np.float32)
    q = quantize(x, QuantSpec("int8_sym"))
    # the scale is 2/127 rounded up to float16, so 1.0 lands just below 63.5
    assert q.codes.tolist() == [-127, 0, 63, 127]
    assert dequantize(q)[1] == 0.0


def test_per_channel_scales_follow_the_axis():
    x = np.stack([np.full((3,), 1.0), np.full((3,), 100.0)]).astype(np.float32)
    q = quantize(x, QuantSpec("int8_sym", axis=0))
    assert q.scales.shape == (2,) and q.scales[1] > 50 * q.scales[0]
    np.testing.assert_allclose(dequantize(q), x, rtol=1e-2)


def test_fp4_ties_go_to_the_even_code():
    # scale = 6/6 = 1 for the block, so the magnitudes are compared directly with the E2M1 table
    x = np.array([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.75], dtype=np.float32)
    q = quantize(x, QuantSpec("fp4_e2m1"))
    assert float(q.scales[0]) == 1.0
    assert dequantize(q).tolist() == [6.0, 0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -1.0]


def test_scales_are_rounded_up_to_float16():
    v = np.array([1e-3, 0.1, 3.0, 1e-9, 0.0], dtype=np.float32)
    h = up16(v)
    assert h.dtype == np.float16 and np.all(h.astype(np.float32) >= v)
    assert h[3] > 0 and h[4] == 0


def test_int4_packing_is_low_nibble_first_with_zero_padding():
    q = quantize(np.array([7.0, -7.0, 1.0], dtype=np.float32), QuantSpec("int4_sym"))
    assert q.codes.tolist() == [7, -7, 1]
    assert codes_to_bytes(q) == bytes([0x97, 0x01])


@pytest.mark.parametrize("bad", [np.array([np.nan], np.float32), np.array([np.inf], np.float32),
                                 np.array([1e9], np.float32)])
def test_unrepresentable_inputs_are_refused(bad):
    with pytest.raises(QuantizationError):
        quantize(bad, QuantSpec("int8_sym"))


def test_bad_specs_are_refused():
    with pytest.raises(QuantizationError):
        QuantSpec("int3")
    with pytest.raises(QuantizationError):
        QuantSpec("fp4_e2m1", block=24)
    with pytest.raises(QuantizationError):
        quantize(np.zeros((2, 2), np.float32), QuantSpec("int8_sym", axis=2))


def test_raw_is_lossless_and_keeps_its_dtype():
    x = np.arange(-5, 5, dtype=np.int16).reshape(2, 5)
    q = quantize(x, QuantSpec("raw"))
    assert dequantize(q).dtype == np.int16 and np.array_equal(dequantize(q), x)
