"""Plain-torch stochastic rounding to bf16, bit for bit as csrc/ops/random.h
and csrc/ops/storage.h define it, for the mixed-precision tests.

Written from the definitions, not from the kernels: an element's 16 random
bits are half of lowbias32(pair ^ key), the pair being its index within the
tensor (memory order) halved, the low half for the even element; the key is
splitmix64's finalizer over (seed, stream, step) folded to 32 bits, the stream
being the param's index in state_dict order and the step the counter after
this step's increment. Rounding adds the bits to the 16 that bf16 drops.
"""

from __future__ import annotations

import torch

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def mix64(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def stream_key(seed: int, stream: int, step: int) -> int:
    h = mix64(mix64(mix64(seed) ^ stream) ^ step)
    return (h ^ (h >> 32)) & M32


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """x * c mod 2**32 for int64 tensors holding uint32 values, without
    relying on int64 overflow: the high half's product only adds its low 16
    bits, shifted."""
    low = (x & 0xFFFF) * c
    high = (((x >> 16) * c) & 0xFFFF) << 16
    return (low + high) & M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def element_bits(numel: int, key: int) -> torch.Tensor:
    """The 16 random bits of each element (int64), in memory order."""
    index = torch.arange(numel, dtype=torch.int64)
    pair = index >> 1
    assert numel < 2**33, "past 2**32 pairs the key is rehashed (ops::chunk_key)"
    random = mix32(pair ^ key)
    return torch.where(index % 2 == 0, random & 0xFFFF, random >> 16)


def stochastic_bf16(values: torch.Tensor, key: int) -> torch.Tensor:
    """fp32 values (contiguous) rounded to bf16 with the bits of ``key``."""
    assert values.dtype == torch.float32 and values.is_contiguous()
    bits = values.view(torch.int32).to(torch.int64).flatten() & M32
    rounded = (bits + element_bits(values.numel(), key)) >> 16
    nan = torch.isnan(values.flatten())
    rounded = torch.where(nan, (bits | 0x400000) >> 16, rounded)
    signed16 = torch.where(rounded >= 0x8000, rounded - 0x10000, rounded)
    return signed16.to(torch.int16).view(torch.bfloat16).view(values.shape)


def bits_of(t: torch.Tensor) -> torch.Tensor:
    """A tensor's raw bits, for bit-for-bit comparisons (NaN == NaN)."""
    views = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.detach().contiguous().view(views[t.element_size()])
