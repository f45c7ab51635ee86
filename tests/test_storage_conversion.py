"""csrc/ops/storage.h conversions against torch's casts, bit for bit."""

from __future__ import annotations

import pytest
import torch

import fusedoptim
from fusedoptim import _C

from optim_reference import usable_isas

CODES = {torch.float16: 2, torch.bfloat16: 3}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_every_half_value_widens_exactly(dtype):
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    halves = bits.view(dtype)
    out = torch.empty(halves.numel(), dtype=torch.float32)
    _C.storage_to_float(CODES[dtype], halves.data_ptr(), out.data_ptr(), halves.numel())
    expected = halves.float()
    nan = expected.isnan()
    assert torch.equal(out.isnan(), nan)
    assert torch.equal(out[~nan].view(torch.int32), expected[~nan].view(torch.int32))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_float_rounds_to_half_like_torch(dtype):
    gen = torch.Generator().manual_seed(0)
    random_bits = torch.randint(-(2**31), 2**31 - 1, (2_000_000,), generator=gen, dtype=torch.int64)
    values = random_bits.to(torch.int32).view(torch.float32)
    # Ties, overflow edges, subnormals, signed zeros and infinities.
    edges = torch.tensor(
        [
            0.0,
            -0.0,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            6e-8,
            3e-8,
            2.98e-8,
            1e-40,
            float("inf"),
            float("-inf"),
            float("nan"),
            1.0 + 2**-11,
            1.0 + 3 * 2**-11,
            1.0 + 2**-8,
            1.0 + 3 * 2**-8,
            3.4e38,
            -3.4e38,
        ],
        dtype=torch.float32,
    )
    values = torch.cat([values, edges])
    out = torch.empty(values.numel(), dtype=dtype)
    _C.float_to_storage(CODES[dtype], values.data_ptr(), out.data_ptr(), values.numel())
    expected = values.to(dtype)
    nan = expected.isnan()
    assert torch.equal(out.isnan(), nan)
    assert torch.equal(out[~nan].view(torch.int16), expected[~nan].view(torch.int16))
    if dtype == torch.bfloat16:
        # torch writes one NaN pattern; a NaN here keeps its sign and top payload
        # bits and gets the quiet bit (see [note: half conversions]).
        bits = values[nan].view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        quieted = ((bits >> 16) | 0x40).to(torch.int32).to(torch.int16)
        assert torch.equal(out[nan].view(torch.int16), quieted)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_bf16_kernel_stores_round_like_torch(isa):
    """The optimizer loops narrow bf16 two elements at a time (cpu/half_pairs.h),
    not through float_to_storage: an SGD step p = 0 + -1 * (g * scale) on every
    bf16 grad pattern times scales that make ties, overflow and subnormals must
    round exactly as torch's cast of the same float32 arithmetic."""
    if isa not in usable_isas():
        pytest.skip(f"this CPU cannot run {isa}")
    every_bf16 = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    grads = every_bf16.view(torch.bfloat16)
    # One extra element: the odd tail runs the one-element loop.
    grads = torch.cat([grads, torch.tensor([1.0 + 2**-7], dtype=torch.bfloat16)])
    chosen = fusedoptim.info()["isa_active"]
    try:
        fusedoptim._backend.set_isa(isa)
        for scale in (1.0 + 2**-8, 1.0 + 3 * 2**-9, 0.3, 3.0, 2.0**-10):
            params = torch.zeros_like(grads)
            call = _C.SgdCall(
                dtype=CODES[torch.bfloat16],
                numels=[grads.numel()],
                params=[params.data_ptr()],
                momentum_buffers=[],
                new_buffers=[],
            )
            _C.sgd_step(
                call,
                [grads.data_ptr()],
                lr=1.0,
                momentum=0.0,
                dampening=0.0,
                weight_decay=0.0,
                l1=0.0,
                nesterov=False,
                maximize=False,
                grad_unscale=scale,
                num_threads=2,
            )
            scale32 = torch.tensor(scale, dtype=torch.float32)
            expected = (0.0 + -1.0 * ((grads.float() * scale32) * 1.0)).to(torch.bfloat16)
            nan = expected.isnan()
            assert torch.equal(params.isnan(), nan)
            assert torch.equal(params[~nan].view(torch.int16), expected[~nan].view(torch.int16))
    finally:
        fusedoptim._backend.set_isa(chosen)
