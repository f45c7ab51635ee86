"""The per-group plans never go stale: every change between steps is seen.

Each test runs fusedoptim and torch.optim side by side, changes something
between steps, and checks that the results still agree (or that the step is
refused with nothing written).
"""

from __future__ import annotations

import copy

import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale, twin_params


def twins(cls_name, values, **kwargs):
    """ours, theirs, our optimizer, torch's (foreach=False) over copies of values."""
    ours, theirs = twin_params(values)
    kwargs = {"lr": 1e-2, **kwargs}
    a = getattr(fusedoptim, cls_name)(ours, **kwargs)
    b = getattr(torch.optim, cls_name)(theirs, foreach=False, **kwargs)
    return ours, theirs, a, b


def pair(cls_name="AdamW", n=4, size=33, **kwargs):
    gen = torch.Generator().manual_seed(0)
    return twins(cls_name, [torch.randn(size, generator=gen) for _ in range(n)], **kwargs)


def step_both(ours, theirs, a, b, seed, skip=()):
    gen = torch.Generator().manual_seed(seed)
    for i, (p, q) in enumerate(zip(ours, theirs)):
        g = torch.randn(p.shape, generator=gen)
        if i in skip:
            p.grad = q.grad = None
        else:
            p.grad, q.grad = g.clone(), g.clone()
    a.step()
    b.step()


@pytest.mark.parametrize("cls_name", ["AdamW", "SGD"])
def test_grads_appearing_and_disappearing(cls_name):
    kwargs = {"momentum": 0.9} if cls_name == "SGD" else {}
    ours, theirs, a, b = pair(cls_name, **kwargs)
    for seed, skip in enumerate([(), (), (1,), (1, 2), (), (0,), ()]):
        step_both(ours, theirs, a, b, seed, skip)
        assert_close_to_scale(ours, theirs, torch.float32)


def test_state_tensor_replaced_by_hand_is_used():
    ours, theirs, a, b = pair()
    for seed in range(3):
        step_both(ours, theirs, a, b, seed)
    for p, q in zip(ours, theirs):
        a.state[p]["exp_avg"] = a.state[p]["exp_avg"].clone() * 0.5
        b.state[q]["exp_avg"] = b.state[q]["exp_avg"].clone() * 0.5
    step_both(ours, theirs, a, b, 10)
    assert_close_to_scale(ours, theirs, torch.float32)
    assert_close_to_scale(
        [a.state[p]["exp_avg"] for p in ours],
        [b.state[q]["exp_avg"] for q in theirs],
        torch.float32,
    )


def test_state_cleared_by_hand_restarts_like_torch():
    ours, theirs, a, b = pair()
    for seed in range(3):
        step_both(ours, theirs, a, b, seed)
    a.state.clear()
    b.state.clear()
    step_both(ours, theirs, a, b, 5)
    assert a.state[ours[0]]["step"].item() == 1
    assert_close_to_scale(ours, theirs, torch.float32)


def test_amsgrad_switched_on_mid_training():
    ours, theirs, a, b = pair()
    for seed in range(3):
        step_both(ours, theirs, a, b, seed)
    # torch.optim raises KeyError here (no max_exp_avg_sq yet); fusedoptim
    # starts the running max at zero, as a fresh amsgrad optimizer would.
    a.param_groups[0]["amsgrad"] = True
    a.step()
    assert "max_exp_avg_sq" in a.state[ours[0]]


def test_param_data_swapped_for_another_dtype():
    p = torch.nn.Parameter(torch.ones(8))
    opt = fusedoptim.SGD([p], lr=0.5)
    p.grad = torch.ones(8)
    opt.step()
    p.data = torch.ones(8, dtype=torch.float64)
    p.grad = torch.ones(8, dtype=torch.float64)
    opt.step()
    assert p.dtype == torch.float64
    assert torch.equal(p.detach(), torch.full((8,), 0.5, dtype=torch.float64))


def test_non_contiguous_grad_appearing_later_is_followed():
    ours, theirs, a, b = pair()
    step_both(ours, theirs, a, b, 0)
    for seed in range(1, 4):  # planned, then a strided grad each step
        grad = torch.randn(66, generator=torch.Generator().manual_seed(seed))[::2]
        ours[2].grad, theirs[2].grad = grad, grad.clone()
        a.step()
        b.step()
        assert_close_to_scale(ours, theirs, torch.float32)


def test_load_state_dict_mid_training_replaces_plans():
    ours, theirs, a, b = pair("Adam", amsgrad=True)
    for seed in range(3):
        step_both(ours, theirs, a, b, seed)
    saved = copy.deepcopy(b.state_dict())  # state_dict() returns live tensors
    for seed in range(3, 5):
        step_both(ours, theirs, a, b, seed)
    a.load_state_dict(copy.deepcopy(saved))
    b.load_state_dict(copy.deepcopy(saved))
    for p, q in zip(ours, theirs):
        with torch.no_grad():
            p.copy_(q)
    step_both(ours, theirs, a, b, 9)
    assert_close_to_scale(ours, theirs, torch.float32)


def test_add_param_group_mid_training():
    ours, theirs, a, b = pair()
    step_both(ours, theirs, a, b, 0)
    extra = torch.randn(5)
    p, q = torch.nn.Parameter(extra.clone()), torch.nn.Parameter(extra.clone())
    a.add_param_group({"params": [p], "lr": 0.1})
    b.add_param_group({"params": [q], "lr": 0.1})
    step_both(ours + [p], theirs + [q], a, b, 1)
    step_both(ours + [p], theirs + [q], a, b, 2)
    assert_close_to_scale(ours + [p], theirs + [q], torch.float32)


@pytest.mark.parametrize(
    ("replacement", "error", "match"),
    [
        # A plan that trusted the old size would read past the new end.
        (torch.ones(5), ValueError, "grad has shape"),
        (torch.ones(33, dtype=torch.float64), (TypeError, ValueError), "dtype"),
    ],
)
def test_grad_data_replaced_in_the_same_grad_object_is_refused(replacement, error, match):
    # `grad.data = other` keeps the grad object (and passes torch's p.grad
    # checks), so only a per-step look at the grad itself sees it.
    ours, theirs, a, b = pair()
    for p in ours:
        p.grad = torch.ones_like(p)
    a.step()
    a.step()  # the second step runs on the cached plan
    before = [p.detach().clone() for p in ours]
    ours[1].grad.data = replacement
    with pytest.raises(error, match=match):
        a.step()
    assert all(torch.equal(x, p.detach()) for x, p in zip(before, ours))


def test_sparse_grad_appearing_later_is_refused():
    ours, theirs, a, b = pair()
    step_both(ours, theirs, a, b, 0)
    before = [p.detach().clone() for p in ours]
    ours[0].grad = torch.zeros(33).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        a.step()
    assert all(torch.equal(x, p.detach()) for x, p in zip(before, ours))


@pytest.mark.parametrize("cls_name", ["AdamW", "SGD"])
def test_grads_zeroed_in_place_and_refilled(cls_name):
    # zero_grad(set_to_none=False): the same grad objects every step.
    kwargs = {"momentum": 0.9, "nesterov": True} if cls_name == "SGD" else {}
    ours, theirs, a, b = pair(cls_name, **kwargs)
    for seed in range(6):
        a.zero_grad(set_to_none=False)
        b.zero_grad(set_to_none=False)
        gen = torch.Generator().manual_seed(seed)
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            if p.grad is None:
                p.grad, q.grad = g.clone(), g.clone()
            else:
                p.grad.add_(g)
                q.grad.add_(g)
        a.step()
        b.step()
        assert_close_to_scale(ours, theirs, torch.float32)


def complex_pair(cls_name, sizes=(1, 7, 1023), **kwargs):
    """Complex params of odd sizes (one real one among them), ours and torch's."""
    gen = torch.Generator().manual_seed(1)
    values = [torch.randn(n, dtype=torch.complex64, generator=gen) for n in sizes]
    values.append(torch.randn(5, generator=gen))
    return twins(cls_name, values, **kwargs)


def give_grads(ours, theirs, seed):
    gen = torch.Generator().manual_seed(seed)
    for p, q in zip(ours, theirs):
        g = torch.randn(p.shape, dtype=p.dtype, generator=gen)
        p.grad, q.grad = g.clone(), g.clone()


def as_real(params):
    return [torch.view_as_real(p.detach()) if p.is_complex() else p.detach() for p in params]


@pytest.mark.parametrize(
    ("cls_name", "kwargs"),
    [
        ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"maximize": True}),
    ],
)
def test_complex_params_run_on_the_plan_and_follow_torch(cls_name, kwargs):
    # Complex params are planned through their real views, as torch.optim
    # updates them; the plan built by the first step serves every later one.
    ours, theirs, a, b = complex_pair(cls_name, **kwargs)
    give_grads(ours, theirs, 0)
    a.step()
    b.step()
    plan = a._plans[0]
    for seed in range(1, 30):
        give_grads(ours, theirs, seed)
        a.step()
        b.step()
        assert a._plans[0] is plan
    assert_close_to_scale(as_real(ours), as_real(theirs), torch.float32)


def test_conjugated_grad_after_planning_is_read_by_value():
    # torch.optim.SGD resolves a conjugated grad; the plan's check must send
    # it to the slow path rather than hand its memory (conj(grad)) to a kernel.
    ours, theirs, a, b = complex_pair("SGD", momentum=0.9)
    for seed in range(4):
        give_grads(ours, theirs, seed)
        if seed >= 2:
            for p, q in zip(ours[:-1], theirs[:-1]):
                p.grad, q.grad = p.grad.conj(), q.grad.conj()
            assert ours[1].grad.is_conj()
        a.step()
        b.step()
        assert_close_to_scale(as_real(ours), as_real(theirs), torch.float32)


def test_param_conjugated_in_place_after_planning_is_refused():
    # `p.data = p.data.conj()` keeps the address: only the conjugate bit says
    # that the memory now holds conj(p).
    ours, theirs, a, b = complex_pair("SGD", momentum=0.9)
    for seed in range(2):
        give_grads(ours, theirs, seed)
        a.step()
    ours[2].data = ours[2].data.conj()
    before = [x.clone() for x in as_real(ours[:2])]
    give_grads(ours, theirs, 5)
    with pytest.raises(ValueError, match=r"params\[2\].*lazily conjugated"):
        a.step()
    assert all(torch.equal(x, p) for x, p in zip(before, as_real(ours[:2])))


def test_l1_switched_on_for_complex_params_after_planning_is_refused():
    ours, theirs, a, b = complex_pair("AdamW")
    for seed in range(2):
        give_grads(ours, theirs, seed)
        a.step()
    a.param_groups[0]["l1"] = 0.1
    before = [x.clone() for x in as_real(ours)]
    steps = a.state[ours[0]]["step"].item()
    give_grads(ours, theirs, 5)
    with pytest.raises(ValueError, match="l1 is not defined for complex"):
        a.step()
    assert all(torch.equal(x, p) for x, p in zip(before, as_real(ours)))
    assert a.state[ours[0]]["step"].item() == steps
