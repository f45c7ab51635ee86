"""The 8-bit state codes (csrc/ops/quant8.h) against the plain-torch reference.

Every code, every midpoint between neighbouring codes, block edges, zeros,
float32 subnormals, inf/NaN, odd sizes and block sizes: the kernels' codes
and absmax must equal tests/quant_reference.py bit for bit, on every ISA
build and for any thread count. Tolerance: none (bit-exact); the round-trip
error bounds below are properties of the format, checked on random data.
"""

from __future__ import annotations

import math

import pytest
import quant_reference as ref
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusedoptim
from fusedoptim import _backend

from optim_reference import usable_isas

KINDS = {
    "signed": (_backend.SIGNED_MOMENT, ref.SIGNED),
    "second": (_backend.SECOND_MOMENT, ref.ROOT),
}
SIZES = (1, 7, 255, 256, 257, 1023, 65537)
BLOCKS = (32, 256, 4096)


def kernel_quantize(kind: int, values: torch.Tensor, block: int):
    codes = torch.empty(values.numel(), dtype=torch.uint8)
    absmax = torch.empty(-(-values.numel() // max(block, 1)))
    _backend.quantize_moment(kind, values, codes, absmax, block)
    return codes, absmax


def kernel_dequantize(kind: int, codes: torch.Tensor, absmax: torch.Tensor, block: int):
    out = torch.empty(codes.numel())
    _backend.dequantize_moment(kind, codes, absmax, out, block)
    return out


def reference_quantize(name: str, values: torch.Tensor, block: int):
    if name == "second":
        return ref.quantize_second_moment(values, block)
    return ref.quantize(ref.SIGNED, values, block)


def reference_dequantize(name: str, codes, absmax, block: int):
    if name == "second":
        return ref.dequantize_second_moment(codes, absmax, block)
    return ref.dequantize(ref.SIGNED, codes, absmax, block)


def wide_values(name: str, n: int, seed: int) -> torch.Tensor:
    """Values over ~30 orders of magnitude (a moment's spread within a block)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen) * torch.exp(torch.randn(n, generator=gen) * 8)
    return x * x if name == "second" else x


def assert_same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    same = (a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b
    bad = (~same).nonzero().flatten()
    assert bad.numel() == 0, (
        f"{bad.numel()} differ, first at {bad[:5].tolist()}: {a[bad[:5]]} {b[bad[:5]]}"
    )


@pytest.mark.parametrize("name", KINDS)
def test_every_code_decodes_to_its_reference_value(name):
    kind, fmt = KINDS[name]
    codes = torch.arange(256, dtype=torch.uint8)
    absmax = torch.tensor([fmt.max_value])  # decode scale exactly 1
    values = kernel_dequantize(kind, codes, absmax, 256)
    expected = reference_dequantize(name, codes, absmax, 256)
    assert_same_bits(values, expected)
    if name == "signed":
        assert values[127].item() == 1.875 and values[255].item() == -1.875
        assert values[1].item() == 2.0**-17  # the smallest nonzero magnitude
    else:
        assert values[255].item() == 1.9375**2 and values[1].item() == 2.0**-36


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", KINDS)
def test_codes_and_absmax_equal_the_reference(name, size, block):
    kind, _ = KINDS[name]
    values = wide_values(name, size, seed=size + block)
    codes, absmax = kernel_quantize(kind, values, block)
    expected_codes, expected_absmax = reference_quantize(name, values, block)
    assert_same_bits(absmax, expected_absmax)
    assert_same_bits(codes, expected_codes)
    assert_same_bits(
        kernel_dequantize(kind, codes, absmax, block),
        reference_dequantize(name, expected_codes, expected_absmax, block),
    )


@pytest.mark.parametrize("name", KINDS)
def test_code_values_and_midpoints_round_as_the_reference(name):
    # The block's absmax is on the largest code, so these are exact
    # normalized values: ties between two codes round to the even one.
    kind, fmt = KINDS[name]
    decoded = reference_dequantize(
        name, torch.arange(256, dtype=torch.uint8), torch.tensor([fmt.max_value]), 256
    ).double()
    points = decoded.unique()
    midpoints = (points[1:] + points[:-1]) / 2
    values = torch.cat([points, midpoints, torch.tensor([decoded.abs().max()])]).float()
    codes, absmax = kernel_quantize(kind, values, 4096)
    expected = reference_quantize(name, values, 4096)
    assert absmax.item() == expected[1].item()
    assert_same_bits(codes, expected[0])


def test_zeros_subnormals_and_signed_zero():
    values = torch.tensor([0.0, -0.0, 1e-45, -1e-40, 1e-38, 0.0, 3.0, -2.0])
    for name, (kind, _) in KINDS.items():
        x = values.abs() if name == "second" else values
        codes, absmax = kernel_quantize(kind, x, 32)
        expected = reference_quantize(name, x, 32)
        assert_same_bits(codes, expected[0])
        assert_same_bits(absmax, expected[1])
    zeros = torch.zeros(300)
    codes, absmax = kernel_quantize(_backend.SIGNED_MOMENT, zeros, 256)
    assert not codes.any() and not absmax.any()
    assert not kernel_dequantize(_backend.SIGNED_MOMENT, codes, absmax, 256).any()


def test_a_nonzero_second_moment_never_decodes_to_zero():
    # Adam divides by sqrt(v) + eps: a nonzero v decoded as 0 turns m / sqrt(v)
    # into m / eps. The smallest root code is kept for any nonzero root,
    # whatever the block's largest value.
    v = torch.tensor([1e30, 1e-30, 1e-40, 3.0, 0.0] + [1.0] * 27)
    codes, absmax = kernel_quantize(_backend.SECOND_MOMENT, v, 32)
    decoded = kernel_dequantize(_backend.SECOND_MOMENT, codes, absmax, 32)
    assert ((decoded > 0) == (v > 0)).all()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 2.0**100, allow_subnormal=True, width=32), min_size=1, max_size=64),
    st.sampled_from([32, 64]),
)
def test_nonzero_stays_nonzero_for_any_block(values, block):
    v = torch.tensor(values, dtype=torch.float32)
    codes, absmax = kernel_quantize(_backend.SECOND_MOMENT, v, block)
    decoded = kernel_dequantize(_backend.SECOND_MOMENT, codes, absmax, block)
    assert ((decoded > 0) == (v > 0)).all()
    assert_same_bits(codes, ref.quantize_second_moment(v, block)[0])


@pytest.mark.parametrize("special", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_marks_its_block_and_only_its_block(special):
    # NaN/inf in a moment (training has diverged) decode as NaN for the whole
    # block; the other blocks keep their values.
    values = torch.randn(96, generator=torch.Generator().manual_seed(1))
    values[40] = special
    codes, absmax = kernel_quantize(_backend.SIGNED_MOMENT, values, 32)
    assert math.isnan(absmax[1].item()) or math.isinf(absmax[1].item())
    decoded = kernel_dequantize(_backend.SIGNED_MOMENT, codes, absmax, 32)
    assert decoded[32:64].isnan().all()
    assert decoded[:32].isfinite().all() and decoded[64:].isfinite().all()
    expected = reference_quantize("signed", values, 32)
    assert_same_bits(codes, expected[0])


@pytest.mark.parametrize("name", KINDS)
def test_round_trip_error_bound(name):
    # Nearest of codes with 3 (4) mantissa bits: at most half a unit of the
    # last place, 2^-4 (2^-5) relative, within the normal range (2^-14 of the
    # block's absmax on); plus fp16's own rounding first (2^-11).
    kind, fmt = KINDS[name]
    values = wide_values(name, 65536, seed=7)
    codes, absmax = kernel_quantize(kind, values, 256)
    decoded = kernel_dequantize(kind, codes, absmax, 256)
    x = values.sqrt() if name == "second" else values
    y = decoded.sqrt() if name == "second" else decoded
    # The second moment's absmax is its largest square root.
    in_range = x.abs() >= absmax.repeat_interleave(256)[: x.numel()] * 2.0**-14 / fmt.max_value
    relative = ((y - x).abs() / x.abs())[in_range & (x != 0)]
    bound = 2.0 ** -(fmt.man_bits + 1) + 2.0**-11
    assert relative.max().item() <= bound


@pytest.mark.parametrize("isa", usable_isas())
def test_every_isa_and_thread_count_writes_the_same_codes(isa):
    values = wide_values("signed", 100_003, seed=3)
    squares = values * values
    fusedoptim.set_num_threads(1)
    expected = [kernel_quantize(k, x, 256) for k, x in ((0, values), (1, squares))]
    fusedoptim._backend.set_isa(isa)
    fusedoptim.set_num_threads(2)
    for (kind, x), (codes, absmax) in zip(((0, values), (1, squares)), expected):
        got_codes, got_absmax = kernel_quantize(kind, x, 256)
        assert_same_bits(got_codes, codes)
        assert_same_bits(got_absmax, absmax)


def test_bad_block_sizes_are_refused():
    values = torch.zeros(64)
    for block in (0, 16, 48, 8192):
        with pytest.raises(ValueError, match="block_size must be a power of two"):
            kernel_quantize(_backend.SIGNED_MOMENT, values, block)
