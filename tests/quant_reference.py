"""The 8-bit state scheme written in plain torch, as the tests' reference.

Mirrors csrc/ops/quant8.h from its definition: a code is an fp16 bit pattern
with fewer bits, so decoding reinterprets it as torch.float16, and encoding
rounds with torch's float32 -> float16 cast and then the dropped mantissa
bits (integer ops). The block scales are float32 operations, as a user would
write them. An optimizer step is: decode, fusedoptim's float step on the
decoded moments (itself tested against torch.optim), encode.
"""

from __future__ import annotations

import torch

import fusedoptim

BLOCK = 256


class Format:
    """A code is fp16 with fewer bits (see csrc/ops/quant8.h): the fp16 bit
    pattern of its value shifted right by 10 - `man_bits`, a sign bit if
    `signed`. Encoding rounds float32 -> fp16 (torch's cast, nearest even),
    then fp16 -> code (nearest even, at most the largest code)."""

    def __init__(self, man_bits: int, signed: bool, keep_nonzero: bool):
        self.man_bits, self.signed, self.keep_nonzero = man_bits, signed, keep_nonzero
        self.shift = 10 - man_bits
        self.max_magnitude = 2 ** (4 + man_bits) - 1
        self.max_value = 2.0 - 2.0**-man_bits
        self.min_value = 2.0 ** -(14 + man_bits)

    def half_bits(self, codes: torch.Tensor) -> torch.Tensor:
        c = codes.to(torch.int32)
        bits = (c & self.max_magnitude) << self.shift
        if self.signed:
            bits = bits | ((c & 0x80) << 8)
        return bits

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """float32 normalized values of uint8 codes."""
        bits = self.half_bits(codes).to(torch.int16)
        return bits.view(torch.float16).float()

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """uint8 codes of float32 normalized values."""
        if self.keep_nonzero:
            y = torch.where((y > 0) & (y < self.min_value), torch.tensor(self.min_value), y)
        h = y.half().view(torch.int16).to(torch.int32) & 0xFFFF
        magnitude = h & 0x7FFF
        rounding = (1 << (self.shift - 1)) - 1 + ((magnitude >> self.shift) & 1)
        code = ((magnitude + rounding) >> self.shift).clamp(max=self.max_magnitude)
        if self.keep_nonzero:
            code = torch.where((code == 0) & (magnitude != 0), 1, code)
        if self.signed:
            code = code | ((h >> 8) & 0x80)
        return code.to(torch.uint8)


SIGNED = Format(3, signed=True, keep_nonzero=False)
ROOT = Format(4, signed=False, keep_nonzero=True)


def _in_blocks(flat: torch.Tensor, block: int) -> torch.Tensor:
    """(blocks, block) view of a 1-D tensor, zero-padded at the end."""
    pad = (-flat.numel()) % block
    return torch.cat([flat, flat.new_zeros(pad)]).view(-1, block)


def quantize(fmt: Format, values: torch.Tensor, block: int = BLOCK):
    """(codes, absmax) of 1-D float32 values: per block, the absmax (NaN if a
    value is NaN, else inf if one is inf) and the codes of values times
    max_value / absmax (times 0 for a zero or non-finite block)."""
    x = _in_blocks(values.float(), block)
    absmax = x.abs().amax(dim=1)  # amax propagates NaN
    usable = absmax.isfinite() & (absmax > 0)
    scale = torch.where(usable, torch.tensor(fmt.max_value) / absmax, torch.tensor(0.0))
    codes = fmt.encode(x * scale[:, None]).reshape(-1)[: values.numel()]
    return codes, absmax


def dequantize(fmt: Format, codes: torch.Tensor, absmax: torch.Tensor, block: int = BLOCK):
    scale = torch.where(absmax.isfinite(), absmax / fmt.max_value, torch.tensor(float("nan")))
    padded = _in_blocks(codes, block)
    return (fmt.decode(padded) * scale[:, None]).reshape(-1)[: codes.numel()]


def quantize_second_moment(v: torch.Tensor, block: int = BLOCK):
    return quantize(ROOT, correctly_rounded_sqrt(v), block)


def dequantize_second_moment(codes, absmax, block: int = BLOCK):
    root = dequantize(ROOT, codes, absmax, block)
    return root * root


def correctly_rounded_sqrt(x: torch.Tensor) -> torch.Tensor:
    # torch's float32 sqrt is not correctly rounded on every CPU; the kernels'
    # is. Through float64 the float32 result is (a double rounding that is
    # innocuous for sqrt).
    return x.double().sqrt().float()


def adam8bit_step(param, grad, state, step, *, block=BLOCK, amsgrad=False, **hyper):
    """One Adam/AdamW step of a 1-D float32/fp16/bf16 param with 8-bit state
    ``state`` = {"exp_avg": (codes, absmax), "exp_avg_sq": ..., ["max_exp_avg_sq"]}
    (updated in place), done as decode, fusedoptim's float step, encode.
    ``step`` is the count before this step. Returns the new param in float32
    (before it is stored in the param's dtype)."""
    m = dequantize(SIGNED, *state["exp_avg"], block)
    v = dequantize_second_moment(*state["exp_avg_sq"], block)
    v_max = [dequantize_second_moment(*state["max_exp_avg_sq"], block)] if amsgrad else []
    shadow = param.float()
    counter = torch.tensor(float(step))
    fusedoptim.functional.adam(
        [shadow], [grad.float()], [m], [v], v_max, [counter], amsgrad=amsgrad, **hyper
    )
    param.copy_(shadow)
    state["exp_avg"] = quantize(SIGNED, m, block)
    state["exp_avg_sq"] = quantize_second_moment(v, block)
    if amsgrad:
        state["max_exp_avg_sq"] = quantize_second_moment(v_max[0], block)
    return shadow


def sgd8bit_step(param, grad, state, *, block=BLOCK, **hyper):
    """One SGD step with an 8-bit momentum buffer ``state`` = {"momentum_buffer":
    (codes, absmax) or None} (updated in place), as decode, fusedoptim's float
    step, encode. Returns the new param in float32."""
    buffer = state.get("momentum_buffer")
    floats = [None if buffer is None else dequantize(SIGNED, *buffer, block)]
    shadow = param.float()
    fusedoptim.functional.sgd([shadow], [grad.float()], floats, **hyper)
    param.copy_(shadow)
    if hyper.get("momentum", 0.0) != 0.0:
        state["momentum_buffer"] = quantize(SIGNED, floats[0], block)
    return shadow


def zero_state(numel: int, amsgrad: bool = False, block: int = BLOCK) -> dict:
    """The 8-bit state Adam8bit starts from: every moment 0."""
    zeros = torch.zeros(numel)
    state = {"exp_avg": quantize(SIGNED, zeros, block), "exp_avg_sq": quantize(ROOT, zeros, block)}
    if amsgrad:
        state["max_exp_avg_sq"] = quantize(ROOT, zeros, block)
    return state
