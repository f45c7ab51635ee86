"""fusedoptim.clip_grad_norm_ against torch.nn.utils.clip_grad_norm_.

Tolerances. torch's CPU norms sum fp32/fp16/bf16 in float in one running sum,
so torch's own total is off the exact norm by up to ~1e-5 (relative) for 65K
elements; ours is summed in double and rounded once. So each total is checked
twice:
  - against a float64 reference: within one rounding of the result dtype
    (_ROUNDING below; fp64: the double summation error, 1e-13);
  - against torch: |ours - torch| <= |torch - reference| + one rounding, i.e. we
    are never further from torch than torch is from the exact norm.
The clipped gradients are compared bit for bit with torch's own
``clip_grads_with_norm_`` given our total (the multiply is torch's), and with
``clip_grad_norm_`` within the relative deviation of the two totals.
"""

from __future__ import annotations

import math

import pytest
import torch

import fusedoptim

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
NORM_TYPES = [1.0, 2.0, 3.5, math.inf]
SIZES = [1, 7, 1023, 65537]

# One rounding to the result dtype (relative), plus slack for the reference's own
# double rounding.
_ROUNDING = {
    torch.float32: 2.0**-23,
    torch.float64: 1e-13,
    torch.bfloat16: 2.0**-7,
    torch.float16: 2.0**-10,
}


def make_params(sizes, dtype, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    params = []
    for n in sizes:
        p = torch.nn.Parameter(torch.randn(n, generator=gen).to(dtype))
        p.grad = (torch.randn(n, generator=gen) * scale).to(dtype)
        params.append(p)
    return params


def clone_params(params):
    out = []
    for p in params:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


def reference_norm(grads, norm_type):
    flat = torch.cat([g.detach().double().flatten() for g in grads])
    return torch.linalg.vector_norm(flat, norm_type).item()


def check_total(ours, theirs, grads, norm_type):
    assert ours.dtype == theirs.dtype and ours.device == theirs.device and ours.dim() == 0
    exact = reference_norm(grads, norm_type)
    rounding = _ROUNDING[ours.dtype] * abs(exact)
    assert abs(ours.item() - exact) <= rounding
    assert abs(ours.item() - theirs.item()) <= abs(theirs.item() - exact) + rounding


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[n] for n in SIZES] + [SIZES], ids=str)
def test_matches_torch(sizes, dtype, norm_type):
    params = make_params(sizes, dtype)
    grads_before = [p.grad.clone() for p in params]
    exact = reference_norm(grads_before, norm_type)
    max_norm = 0.5 * exact  # always clips
    theirs_params = clone_params(params)
    same_coef_params = clone_params(params)

    ours = fusedoptim.clip_grad_norm_(params, max_norm, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, max_norm, norm_type)
    check_total(ours, theirs, grads_before, norm_type)

    # Given our total, the multiply is torch's to the bit.
    torch.nn.utils.clip_grads_with_norm_(same_coef_params, max_norm, ours)
    for p, q in zip(params, same_coef_params):
        assert torch.equal(p.grad, q.grad)

    # End to end, the grads differ from torch's by the totals' relative deviation.
    coef_deviation = abs(ours.item() - theirs.item()) / abs(theirs.item())
    for p, q in zip(params, theirs_params):
        tol = coef_deviation + 2 * _ROUNDING[dtype]
        torch.testing.assert_close(p.grad, q.grad, rtol=tol, atol=0)


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_no_clip_when_under_max_norm(norm_type):
    params = make_params([100, 3], torch.float32)
    before = [p.grad.clone() for p in params]
    total = fusedoptim.clip_grad_norm_(params, 1e9, norm_type)
    assert total.item() > 0
    for p, g in zip(params, before):
        assert torch.equal(p.grad, g)


def test_many_tensors_and_mixed_dtypes():
    gen = torch.Generator().manual_seed(3)
    sizes = torch.randint(0, 3000, (300,), generator=gen).tolist()
    dtypes = [DTYPES[i % 3] for i in range(len(sizes))]  # fp32, fp64, bf16
    params = []
    for n, dtype in zip(sizes, dtypes):
        p = torch.nn.Parameter(torch.zeros(n, dtype=dtype))
        p.grad = torch.randn(n, generator=gen).to(dtype)
        params.append(p)
    before = [p.grad.clone() for p in params]
    theirs_params = clone_params(params)
    ours = fusedoptim.clip_grad_norm_(params, 1.0)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 1.0)
    assert ours.dtype == torch.float64  # torch promotes the per-tensor norms
    # torch rounds each per-tensor norm to its tensor's dtype (bf16 here) before
    # combining them; we round once, so the reference bound is what counts.
    exact = reference_norm(before, 2.0)
    assert abs(ours.item() - exact) <= 1e-13 * exact
    assert abs(ours.item() - theirs.item()) <= 1e-3 * exact
    same_coef = clone_params([torch.nn.Parameter(g.clone()) for g in before])
    for q, g in zip(same_coef, before):
        q.grad = g.clone()
    torch.nn.utils.clip_grads_with_norm_(same_coef, 1.0, ours)
    for p, q in zip(params, same_coef):
        assert torch.equal(p.grad, q.grad)


def test_none_grads_are_skipped_and_untouched():
    params = make_params([10, 20, 30], torch.float32)
    params[1].grad = None
    before = [params[0].grad.clone(), params[2].grad.clone()]
    theirs_params = clone_params(params)
    ours = fusedoptim.clip_grad_norm_(params, 0.1)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 0.1)
    assert params[1].grad is None
    check_total(ours, theirs, before, 2.0)
    torch.testing.assert_close(params[0].grad, theirs_params[0].grad, rtol=1e-6, atol=0)


@pytest.mark.parametrize("parameters", [[], "all_none", "generator"])
def test_no_grads(parameters):
    if parameters == "all_none":
        parameters = [torch.nn.Parameter(torch.ones(3))]
    if parameters == "generator":
        with pytest.warns(UserWarning, match="empty generator, no gradient clipping will occur"):
            total = fusedoptim.clip_grad_norm_((p for p in []), 1.0)
    else:
        total = fusedoptim.clip_grad_norm_(parameters, 1.0)
    expected = torch.tensor(0.0)
    assert torch.equal(total, expected) and total.dtype == expected.dtype


def test_single_tensor_argument():
    (p,) = make_params([50], torch.float32)
    (q,) = clone_params([p])
    ours = fusedoptim.clip_grad_norm_(p, 0.5)
    theirs = torch.nn.utils.clip_grad_norm_(q, 0.5)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)


def test_empty_tensors():
    params = make_params([0, 5, 0], torch.float32)
    theirs_params = clone_params(params)
    torch.testing.assert_close(
        fusedoptim.clip_grad_norm_(params, 0.1),
        torch.nn.utils.clip_grad_norm_(theirs_params, 0.1),
        rtol=1e-6,
        atol=0,
    )
    # torch refuses an inf norm over an empty tensor; so do we, with its message.
    with pytest.raises(RuntimeError, match="cannot compute the infinity norm on an empty tensor"):
        torch.nn.utils.clip_grad_norm_(clone_params(params), 0.1, math.inf)
    with pytest.raises(RuntimeError, match="cannot compute the infinity norm on an empty tensor"):
        fusedoptim.clip_grad_norm_(params, 0.1, math.inf)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_nonfinite_grads(bad, norm_type, dtype):
    params = make_params([40, 9], dtype)
    params[0].grad[7] = bad
    theirs_params = clone_params(params)
    before = [p.grad.clone() for p in params]

    message = f"The total norm of order {norm_type} for gradients from `parameters` is non-finite"
    with pytest.raises(RuntimeError, match=message):
        torch.nn.utils.clip_grad_norm_(clone_params(params), 1.0, norm_type, True)
    with pytest.raises(RuntimeError, match=message):
        fusedoptim.clip_grad_norm_(params, 1.0, norm_type, error_if_nonfinite=True)
    for p, g in zip(params, before):  # a refused call writes nothing
        torch.testing.assert_close(p.grad, g, equal_nan=True, rtol=0, atol=0)

    # Without the flag, the grads are scaled by the non-finite norm, as torch does.
    ours = fusedoptim.clip_grad_norm_(params, 1.0, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 1.0, norm_type)
    torch.testing.assert_close(ours, theirs, equal_nan=True)
    for p, q in zip(params, theirs_params):
        torch.testing.assert_close(p.grad, q.grad, equal_nan=True, rtol=0, atol=0)


def test_float_overflow_is_inf_like_torch():
    """torch sums fp32 squares in float: a sum past float's range is an inf norm."""
    params = make_params([8, 8], torch.float32, scale=1e20)
    theirs_params = clone_params(params)
    ours = fusedoptim.clip_grad_norm_(params, 1.0)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 1.0)
    assert math.isinf(theirs.item()) and math.isinf(ours.item())
    for p, q in zip(params, theirs_params):
        assert torch.equal(p.grad, q.grad)
    # fp64 grads have the range, in torch and here.
    params64 = make_params([8, 8], torch.float64, scale=1e20)
    total = fusedoptim.clip_grad_norm_(params64, 1.0)
    assert math.isfinite(total.item())


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_and_isa_independent(dtype):
    """Chunks and lanes are fixed, so every thread count and ISA gives the same bits."""
    source = make_params([40001, 1, 33000, 5000], dtype)
    first = {}
    for threads in (1, 2, 5):
        fusedoptim.set_num_threads(threads)
        for isa in fusedoptim.info()["isas_compiled"]:
            fusedoptim._backend.set_isa(isa)
            for norm_type in NORM_TYPES:
                params = clone_params(source)
                total = fusedoptim.clip_grad_norm_(params, 1.0, norm_type)
                grads = [p.grad for p in params]
                ref_total, ref_grads = first.setdefault(norm_type, (total, grads))
                assert torch.equal(total, ref_total), (threads, isa, norm_type)
                assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))


@pytest.mark.parametrize("norm_type", [0.0, -1.0, -math.inf])
def test_norm_types_left_to_torch(norm_type):
    """p = 0 counts nonzero per-tensor norms in torch; these stay torch's."""
    params = make_params([5, 6], torch.float32)
    params[0].grad[2] = 0.0
    theirs_params = clone_params(params)
    ours = fusedoptim.clip_grad_norm_(params, 1.0, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 1.0, norm_type)
    assert torch.equal(ours, theirs)
    for p, q in zip(params, theirs_params):
        assert torch.equal(p.grad, q.grad)


def test_layouts():
    # A transposed (dense) grad goes through the fused path; a view with gaps
    # and a complex grad are handed to torch. All must equal torch.
    weight = torch.nn.Parameter(torch.randn(30, 20).t())
    weight.grad = torch.randn(30, 20).t()
    strided = torch.nn.Parameter(torch.randn(40))
    strided.grad = torch.randn(40, 2)[:, 0]
    cplx = torch.nn.Parameter(torch.randn(10, dtype=torch.complex64))
    cplx.grad = torch.randn(10, dtype=torch.complex64)
    for params in ([weight], [weight, strided], [cplx]):
        theirs_params = clone_params(params)
        for q, p in zip(theirs_params, params):
            q.grad = p.grad.clone()
        ours = fusedoptim.clip_grad_norm_(params, 0.1)
        theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 0.1)
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
        for p, q in zip(params, theirs_params):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)


def test_foreach_argument_accepted():
    params = make_params([10], torch.float32)
    theirs_params = clone_params(params)
    torch.testing.assert_close(
        fusedoptim.clip_grad_norm_(params, 0.1, foreach=True),
        torch.nn.utils.clip_grad_norm_(theirs_params, 0.1, foreach=True),
        rtol=1e-6,
        atol=0,
    )


@pytest.mark.cuda
def test_cuda_matches_torch():
    params = [torch.nn.Parameter(p.detach().cuda()) for p in make_params(SIZES, torch.float32)]
    for p, src in zip(params, make_params(SIZES, torch.float32)):
        p.grad = src.grad.cuda()
    theirs_params = clone_params(params)
    ours = fusedoptim.clip_grad_norm_(params, 0.1)
    theirs = torch.nn.utils.clip_grad_norm_(theirs_params, 0.1)
    assert ours.device == theirs.device
    assert torch.equal(ours, theirs)


def test_a_param_listed_twice_is_scaled_twice_like_torch():
    """torch's _foreach_mul_ scales a repeated grad twice; the fused scale runs
    tensors that share memory one at a time, never from two threads at once."""
    gen = torch.Generator().manual_seed(3)
    values = [torch.randn(100_000, generator=gen), torch.randn(7, generator=gen)]
    ours = [torch.nn.Parameter(torch.zeros_like(v)) for v in values]
    theirs = [torch.nn.Parameter(torch.zeros_like(v)) for v in values]
    for p, q, v in zip(ours, theirs, values):
        p.grad, q.grad = v.clone(), v.clone()
    a = fusedoptim.clip_grad_norm_([ours[0], ours[1], ours[0]], max_norm=1.0)
    b = torch.nn.utils.clip_grad_norm_([theirs[0], theirs[1], theirs[0]], max_norm=1.0)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=0)  # the norm is summed in double
    # The repeated grad carries the norm's rounding twice (c * c, c ~ 1/446).
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.grad, q.grad, rtol=4e-6, atol=0)
