"""Randomized hyperparameters: fusedoptim follows torch.optim for any valid choice."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusedoptim

from optim_reference import assert_close_to_scale

STEPS = 25


def run(fused_cls, torch_cls, kwargs, seed):
    gen = torch.Generator().manual_seed(seed)
    values = [torch.randn(n, generator=gen) for n in (1, 7, 1023)]
    ours = [torch.nn.Parameter(v.clone()) for v in values]
    theirs = [torch.nn.Parameter(v.clone()) for v in values]
    a = fused_cls(ours, **kwargs)
    b = torch_cls(theirs, foreach=False, **kwargs)
    for _ in range(STEPS):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert_close_to_scale(ours, theirs, torch.float32)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["Adam", "AdamW"]),
    lr=st.floats(1e-5, 0.5),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0.0, 0.5),
    amsgrad=st.booleans(),
    maximize=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_adam_any_hyperparameters(
    name, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, seed
):
    kwargs = dict(
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
    )
    run(getattr(fusedoptim, name), getattr(torch.optim, name), kwargs, seed)


@settings(max_examples=25, deadline=None)
@given(
    lr=st.floats(1e-5, 0.5),
    momentum=st.floats(0.0, 0.99),
    dampening=st.floats(0.0, 0.9),
    nesterov=st.booleans(),
    weight_decay=st.floats(0.0, 0.5),
    maximize=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sgd_any_hyperparameters(lr, momentum, dampening, nesterov, weight_decay, maximize, seed):
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    kwargs = dict(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    run(fusedoptim.SGD, torch.optim.SGD, kwargs, seed)
