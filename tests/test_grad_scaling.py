"""torch.amp.GradScaler and max_grad_norm: unscale and clip inside the fused step."""

from __future__ import annotations

import copy

import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale

PAIRS = [
    (fusedoptim.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    (fusedoptim.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, maximize=True)),
    (fusedoptim.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
]
IDS = ["AdamW", "Adam", "SGD"]


def model_and_batches(seed=0, steps=12):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(9, 17), torch.nn.ReLU(), torch.nn.Linear(17, 2))
    batches = [(torch.randn(16, 9), torch.randn(16, 2)) for _ in range(steps)]
    return model, batches


def train_with_scaler(model, opt, batches, poison=(), clip=None):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    scales = []
    for step, (x, y) in enumerate(batches):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        if step in poison:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        if clip is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_grad_scaler_matches_torch_including_skipped_steps(fused_cls, torch_cls, kwargs):
    model, batches = model_and_batches()
    twin = copy.deepcopy(model)
    ours = fused_cls(model.parameters(), **kwargs)
    theirs = torch_cls(twin.parameters(), foreach=False, **kwargs)
    assert ours._step_supports_amp_scaling
    s1 = train_with_scaler(model, ours, batches, poison=(4, 5))
    s2 = train_with_scaler(twin, theirs, batches, poison=(4, 5))
    assert s1 == s2
    assert_close_to_scale(list(model.parameters()), list(twin.parameters()), torch.float32)
    if "momentum" not in kwargs:
        step = ours.state[model[0].weight]["step"].item()
        assert step == theirs.state[twin[0].weight]["step"].item() == len(batches) - 2


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_skipped_first_step_changes_nothing_and_creates_no_state(fused_cls, torch_cls, kwargs):
    """As torch.optim, whose step GradScaler does not call at all. (SGD used to
    keep an unfilled momentum buffer from a skipped step.)"""
    model, batches = model_and_batches(steps=3)
    twin = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    ours = fused_cls(model.parameters(), **kwargs)
    theirs = torch_cls(twin.parameters(), foreach=False, **kwargs)
    train_with_scaler(model, ours, batches[:1], poison=(0,))
    train_with_scaler(twin, theirs, batches[:1], poison=(0,))
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert len(ours.state) == len(theirs.state) == 0
    assert ours.state_dict()["state"] == {}
    # Then a step where one param has no grad, and a full step.
    for step, (x, y) in enumerate(batches[1:]):
        for opt, net in ((ours, model), (theirs, twin)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            if step == 0:
                net[0].bias.grad = None
            opt.step()
    assert_close_to_scale(list(model.parameters()), list(twin.parameters()), torch.float32)


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_unscale_then_clip_then_step_matches_torch(fused_cls, torch_cls, kwargs):
    model, batches = model_and_batches(seed=1)
    twin = copy.deepcopy(model)
    ours = fused_cls(model.parameters(), **kwargs)
    theirs = torch_cls(twin.parameters(), foreach=False, **kwargs)
    train_with_scaler(model, ours, batches, clip=0.1)
    train_with_scaler(twin, theirs, batches, clip=0.1)
    assert_close_to_scale(list(model.parameters()), list(twin.parameters()), torch.float32)


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_max_grad_norm_equals_clip_grad_norm_then_step(fused_cls, torch_cls, kwargs):
    model, batches = model_and_batches(seed=2)
    twin = copy.deepcopy(model)
    groups = [
        {"params": model[0].parameters()},
        {"params": model[2].parameters(), "lr": 0.003},
    ]
    ours = fused_cls(groups, max_grad_norm=0.05, **kwargs)
    theirs = torch_cls(
        [{"params": twin[0].parameters()}, {"params": twin[2].parameters(), "lr": 0.003}],
        foreach=False,
        **kwargs,
    )
    for x, y in batches:
        for m, o in ((model, ours), (twin, theirs)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.05)
        grads_before = [p.grad.clone() for p in model.parameters()]
        ours.step()
        theirs.step()
        # Clipping happens inside the kernel: the grads themselves are untouched.
        assert all(torch.equal(g, p.grad) for g, p in zip(grads_before, model.parameters()))
    assert_close_to_scale(list(model.parameters()), list(twin.parameters()), torch.float32)


def test_max_grad_norm_validation():
    with pytest.raises(ValueError, match="Invalid max_grad_norm value: 0"):
        fusedoptim.SGD([torch.nn.Parameter(torch.ones(1))], max_grad_norm=0)
