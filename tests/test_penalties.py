"""fusedoptim.penalties: l1/l2 norms of param lists and the global grad norm.

Every result is a 0-dim float32 tensor computed from double sums and rounded
once, so it must equal the float64 reference rounded to float32 to within one
float32 rounding (relative 2**-23 allows for the reference's own rounding).
torch.nn.utils.get_total_norm sums in float and is checked with the bound of
test_clip_grad_norm.py: we are never further from it than it is from exact.
"""

from __future__ import annotations

import math

import pytest
import torch

import fusedoptim
from fusedoptim import penalties

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
SIZES = [1, 7, 1023, 65537]
F32_ROUNDING = 2.0**-23


def make_tensors(sizes, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=gen).to(dtype) for n in sizes]


def reference(tensors, kind):
    flat = torch.cat([t.double().flatten() for t in tensors]) if tensors else torch.zeros(0)
    if kind == "l1":
        return flat.abs().sum().item()
    if kind == "l2":
        return flat.square().sum().sqrt().item()
    return flat.square().sum().item()


def check_float32(result, exact):
    assert result.dtype == torch.float32 and result.dim() == 0 and not result.requires_grad
    assert abs(result.item() - exact) <= F32_ROUNDING * abs(exact)


FUNCTIONS = {"l1": penalties.l1_norm, "l2": penalties.l2_norm, "l2_squared": penalties.l2_squared}


@pytest.mark.parametrize("kind", list(FUNCTIONS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[n] for n in SIZES] + [SIZES], ids=str)
def test_penalties_match_float64(sizes, dtype, kind):
    tensors = make_tensors(sizes, dtype)
    check_float32(FUNCTIONS[kind](tensors), reference(tensors, kind))


@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_l2_in_one_pass(dtype):
    tensors = make_tensors(SIZES, dtype)
    l1, l2 = penalties.l1_l2_norms(tensors)
    check_float32(l1, reference(tensors, "l1"))
    check_float32(l2, reference(tensors, "l2"))
    assert torch.equal(l1, penalties.l1_norm(tensors))
    assert torch.equal(l2, penalties.l2_norm(tensors))


def test_model_parameters_and_single_tensor():
    model = torch.nn.Sequential(torch.nn.Linear(13, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    params = [p.detach() for p in model.parameters()]
    result = penalties.l2_squared(model.parameters())
    check_float32(result, reference(params, "l2_squared"))
    assert not result.requires_grad
    weight = model[0].weight
    check_float32(penalties.l1_norm(weight), reference([weight.detach()], "l1"))


def test_empty():
    for function in FUNCTIONS.values():
        assert torch.equal(function([]), torch.tensor(0.0))
    assert torch.equal(penalties.global_grad_norm([]), torch.tensor(0.0))
    check_float32(penalties.l1_norm([torch.zeros(0), torch.ones(3)]), 3.0)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_grad_norm(dtype, norm_type):
    grads = make_tensors(SIZES, dtype, seed=1)
    ours = penalties.global_grad_norm(grads, norm_type)
    flat = torch.cat([g.double().flatten() for g in grads])
    exact = torch.linalg.vector_norm(flat, norm_type).item()
    check_float32(ours, exact)
    theirs = torch.nn.utils.get_total_norm(grads, norm_type).float().item()
    bound = abs(theirs - exact) + max(F32_ROUNDING, _torch_dtype_rounding(dtype)) * exact
    assert abs(ours.item() - theirs) <= bound


def _torch_dtype_rounding(dtype):
    # torch returns the norm of bf16/fp16 grads in their dtype.
    return {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}.get(dtype, 0.0)


def test_global_grad_norm_special_values():
    grads = [torch.tensor([1.0, -3.0]), torch.tensor([math.nan])]
    assert math.isnan(penalties.global_grad_norm(grads).item())
    assert math.isnan(penalties.global_grad_norm(grads, math.inf).item())
    grads = [torch.tensor([1.0, -math.inf])]
    assert penalties.global_grad_norm(grads).item() == math.inf
    assert penalties.global_grad_norm(grads, 1.0).item() == math.inf
    with pytest.raises(RuntimeError, match="infinity norm on an empty tensor"):
        penalties.global_grad_norm([torch.zeros(0)], math.inf)
    # norm types the kernel leaves to torch
    grads = [torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0])]
    assert penalties.global_grad_norm(grads, 0.0).item() == 1.0  # torch's per-tensor count
    assert penalties.global_grad_norm(grads, -math.inf).item() == 0.0


def test_device_path_agrees_with_fused_path():
    """The torch path (CUDA, DTensor) run on CPU tensors gives the same norms."""
    tensors = make_tensors(SIZES, torch.float32, seed=2)
    for norm_type in (1.0, 2.0, 3.5, math.inf):
        fused = penalties.global_grad_norm(tensors, norm_type)
        device = penalties._device_norm(tensors, norm_type)
        assert device.dtype == torch.float32
        torch.testing.assert_close(device, fused, rtol=1e-5, atol=0)


@pytest.mark.parametrize("kind", ["l1", "l2", "l2_squared", "grad_norm"])
def test_thread_count_independent(kind):
    tensors = make_tensors([50000, 3, 40000], torch.float32, seed=4)
    function = FUNCTIONS.get(kind, penalties.global_grad_norm)
    results = []
    for threads in (1, 2, 3, 7):
        fusedoptim.set_num_threads(threads)
        results.append(function(tensors))
    assert all(torch.equal(r, results[0]) for r in results)


@pytest.mark.cuda
def test_cuda_device_path():
    grads = [t.cuda() for t in make_tensors(SIZES, torch.bfloat16)]
    ours = penalties.global_grad_norm(grads)
    assert ours.device.type == "cuda" and ours.dtype == torch.float32
    exact = reference([g.cpu() for g in grads], "l2")
    assert abs(ours.item() - exact) <= 1e-5 * exact
    l1, l2 = penalties.l1_l2_norms(grads)
    assert l1.device.type == "cuda" and l2.device.type == "cuda"
