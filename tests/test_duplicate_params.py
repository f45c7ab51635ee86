"""A param listed twice in one group: torch.optim warns and updates it twice in
a row (the second update sees the first one's moments and step count). The
fused step does the same, from two successive calls, so no call ever writes
one element from two threads."""

from __future__ import annotations

import warnings

import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale

CASES = [
    ("Adam", {}),
    ("AdamW", {"amsgrad": True}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.9, "dampening": 0.1}),
    ("SGD", {}),
]


@pytest.mark.parametrize(("cls_name", "kwargs"), CASES)
def test_a_param_listed_twice_is_updated_twice_like_torch(cls_name, kwargs):
    gen = torch.Generator().manual_seed(0)
    # 100,000 elements: several chunks, so both threads would touch the param.
    values = [torch.randn(100_000, generator=gen), torch.randn(7, generator=gen)]
    ours = [torch.nn.Parameter(v.clone()) for v in values]
    theirs = [torch.nn.Parameter(v.clone()) for v in values]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's duplicate-parameter warning
        a = getattr(fusedoptim, cls_name)([ours[0], ours[1], ours[0]], lr=1e-2, **kwargs)
        b = getattr(torch.optim, cls_name)(
            [theirs[0], theirs[1], theirs[0]], lr=1e-2, foreach=False, **kwargs
        )
    for _ in range(5):
        grads = [torch.randn(v.shape, generator=gen) for v in values]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
        assert_close_to_scale(ours, theirs, torch.float32)
    if cls_name != "SGD":
        assert a.state[ours[0]]["step"].item() == b.state[theirs[0]]["step"].item() == 10
