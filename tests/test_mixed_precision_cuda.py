"""Mixed precision on CUDA: stochastic rounding, master weights and grads of
another dtype give the same bits as the CPU (whose results
tests/test_mixed_precision.py checks against references), over many steps,
odd sizes and more tensors than one launch table holds. Skipped without a
CUDA device (see tests/cuda_marks.py for FUSEDOPTIM_REQUIRE_CUDA). Tolerance:
none (bit for bit with the CPU's FMA builds).
"""

from __future__ import annotations

import pytest
import torch
from cuda_marks import CUDA_MODULE
from rounding_reference import bits_of

import fusedoptim

pytestmark = CUDA_MODULE

# 700 small tensors overflow one launch table; the large ones span chunks,
# and 2**16 + 1 puts a bf16 pair across a chunk boundary.
SIZES = (1, 7, 4096, 65537, 278011) + tuple(1 + i % 13 for i in range(700))

CASES = [
    ("AdamW", dict(lr=1e-2, bf16_stochastic_round=True), torch.bfloat16, None),
    ("Adam", dict(lr=1e-2, amsgrad=True, bf16_stochastic_round=True), torch.bfloat16, None),
    ("SGD", dict(lr=0.1, momentum=0.9, bf16_stochastic_round=True), torch.bfloat16, None),
    ("SGD", dict(lr=0.1, bf16_stochastic_round=True), torch.bfloat16, None),
    ("AdamW8bit", dict(lr=1e-2, bf16_stochastic_round=True), torch.bfloat16, None),
    ("SGD8bit", dict(lr=0.1, momentum=0.9, bf16_stochastic_round=True), torch.bfloat16, None),
    ("AdamW", dict(lr=1e-2, master_weights=True), torch.bfloat16, None),
    ("AdamW", dict(lr=1e-2, master_weights=True), torch.float16, None),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, master_weights=True), torch.float16, None),
    ("AdamW8bit", dict(lr=1e-2, master_weights=True), torch.bfloat16, None),
    ("AdamW", dict(lr=1e-2), torch.float32, torch.bfloat16),
    ("SGD", dict(lr=0.1, momentum=0.9), torch.float32, torch.float16),
    ("AdamW8bit", dict(lr=1e-2), torch.float32, torch.bfloat16),
    ("Adam", dict(lr=1e-2), torch.bfloat16, torch.float32),
    # The deepest launch tables (8-bit amsgrad plus the master's copy, slot 8),
    # the mixed kernel with amsgrad and a copy, SGD8bit without momentum.
    ("Adam8bit", dict(lr=1e-2, amsgrad=True, master_weights=True), torch.bfloat16, None),
    ("Adam", dict(lr=1e-2, amsgrad=True, master_weights=True), torch.float16, None),
    ("SGD8bit", dict(lr=0.1, master_weights=True), torch.bfloat16, None),
    # Blocks above 256 elements take the kernels with 16 elements per thread.
    ("AdamW8bit", dict(lr=1e-2, block_size=2048, bf16_stochastic_round=True), torch.bfloat16, None),
    (
        "SGD8bit",
        dict(lr=0.1, momentum=0.9, block_size=4096, master_weights=True),
        torch.float16,
        None,
    ),
    ("AdamW8bit", dict(lr=1e-2, block_size=1024), torch.float32, torch.float16),
]


def _id(case):
    name, kwargs, dtype, grad_dtype = case
    options = ",".join(
        k if v is True else f"{k}={v}" for k, v in kwargs.items() if k != "lr" and v is not False
    )
    return f"{name}-{options}-{dtype}-grads:{grad_dtype}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_cuda_equals_cpu_bit_for_bit(case):
    name, kwargs, dtype, grad_dtype = case
    cls = getattr(fusedoptim, name)
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(n, generator=gen).to(dtype) for n in SIZES]
    cpu = [torch.nn.Parameter(v.clone()) for v in values]
    gpu = [torch.nn.Parameter(v.cuda()) for v in values]
    for p in cpu + gpu:
        p.grad_dtype = grad_dtype or dtype
    a = cls(cpu, seed=5, **kwargs)
    b = cls(gpu, seed=5, **kwargs)
    for _ in range(5):
        for p, q in zip(cpu, gpu):
            g = torch.randn(p.shape, generator=gen).to(grad_dtype or dtype)
            p.grad, q.grad = g, g.cuda()
        a.step()
        b.step()
    torch.cuda.synchronize()
    for i, (p, q) in enumerate(zip(cpu, gpu)):
        assert torch.equal(bits_of(p), bits_of(q.cpu())), i
        for key, value in a.state[p].items():
            assert torch.equal(bits_of(value), bits_of(b.state[q][key].cpu())), (i, key)
