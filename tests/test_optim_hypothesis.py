"""Randomized hyperparameters: fusedoptim follows torch.optim for any valid choice."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusedoptim

from optim_reference import run_twins

STEPS = 25


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
    run_twins(getattr(fusedoptim, name), getattr(torch.optim, name), kwargs, seed, STEPS)


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
    run_twins(fusedoptim.SGD, torch.optim.SGD, kwargs, seed, STEPS)
