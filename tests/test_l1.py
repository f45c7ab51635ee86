"""The decoupled L1 proximal step: formula, exact zeros, every optimizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale, make_params, twin_params


def prox(p: torch.Tensor, threshold: float) -> torch.Tensor:
    """The README's formula, written independently: sign(p) * max(|p| - t, 0)."""
    return torch.sign(p) * torch.clamp(p.abs() - threshold, min=0)


CASES = [
    (fusedoptim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (fusedoptim.SGD, torch.optim.SGD, dict(lr=0.05)),
    (fusedoptim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)),
    (fusedoptim.AdamW, torch.optim.AdamW, dict(lr=0.01, amsgrad=True)),
]


@pytest.mark.parametrize(
    "fused_cls,torch_cls,kwargs", CASES, ids=lambda x: getattr(x, "__name__", "")
)
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64), ids=str)
def test_l1_is_torch_step_then_proximal_step(fused_cls, torch_cls, kwargs, dtype):
    l1 = 0.5
    values = make_params(dtype, sizes=(1, 7, 1023, 4099), seed=11)
    ours, theirs = twin_params(values)
    a = fused_cls(ours, l1=l1, **kwargs)
    b = torch_cls(theirs, foreach=False, **kwargs)
    gen = torch.Generator().manual_seed(12)
    for _ in range(50):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen, dtype=dtype)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
        with torch.no_grad():
            for q in theirs:
                q.copy_(prox(q, kwargs["lr"] * l1))
        assert_close_to_scale(ours, theirs, dtype)
    zeros = sum(int((p == 0).sum()) for p in ours)
    assert zeros > 0, "L1 must drive some weights to exact zero"
    assert zeros == sum(int((q == 0).sum()) for q in theirs)


def test_l1_zeroes_small_weights_exactly_and_shrinks_the_rest():
    p = torch.nn.Parameter(torch.tensor([0.3, -0.3, 0.05, -0.05, 0.0, 2.0, -2.0]))
    opt = fusedoptim.SGD([p], lr=1.0, l1=0.1)
    p.grad = torch.zeros_like(p)
    opt.step()
    expected = torch.tensor([0.2, -0.2, 0.0, 0.0, 0.0, 1.9, -1.9])
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7)
    assert (p.detach()[2:5] == 0).all()
    # sign(p) * 0: a weight zeroed from the negative side is -0, as the formula says.
    assert torch.equal(torch.signbit(p.detach()[2:5]), torch.tensor([False, True, False]))


def test_l1_keeps_nan_visible():
    p = torch.nn.Parameter(torch.tensor([float("nan"), 1.0]))
    opt = fusedoptim.SGD([p], lr=1.0, l1=0.1)
    p.grad = torch.zeros(2)
    opt.step()
    assert torch.isnan(p[0])


def test_l1_functional_numpy_matches_formula():
    rng = np.random.default_rng(0)
    p = rng.standard_normal(1001).astype(np.float64)
    g = rng.standard_normal(1001).astype(np.float64)
    expected = p - 0.1 * g
    expected = np.sign(expected) * np.maximum(np.abs(expected) - 0.1 * 0.7, 0)
    fusedoptim.functional.sgd([p], [g], [None], lr=0.1, l1=0.7)
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-15)


def test_negative_l1_is_refused():
    with pytest.raises(ValueError, match="Invalid l1 value"):
        fusedoptim.AdamW([torch.nn.Parameter(torch.ones(1))], l1=-1.0)


def test_l1_on_complex_params_is_refused_before_writing():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.complex64))
    opt = fusedoptim.Adam([p], l1=0.1)
    p.grad = torch.ones(3, dtype=torch.complex64)
    with pytest.raises(ValueError, match="l1 is not defined for complex"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3, dtype=torch.complex64)) and not opt.state
