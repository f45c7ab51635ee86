"""csrc/ops/storage.h conversions against torch's casts, bit for bit."""

from __future__ import annotations

import pytest
import torch

from fusedoptim import _C

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
