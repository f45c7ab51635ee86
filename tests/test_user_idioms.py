"""Ordinary training code that torch.optim accepts: fusedoptim must follow it.

Each case was once refused or crashed: betas given as a list in a param group,
the optimizer state reset by assigning a new mapping, a state saved from a
contiguous model loaded into a channels_last one, and grads assigned by hand
in another layout than their param (transposed, expanded, strided). Results
are compared with torch.optim (foreach=False), tolerance as test_optim_parity.
"""

from __future__ import annotations

import collections
import copy
import json

import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale, twin_params

OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
]
IDS = [name for name, _ in OPTIMIZERS]


def twins(name, module, **kwargs):
    theirs = copy.deepcopy(module)
    a = getattr(fusedoptim, name)(module.parameters(), **kwargs)
    b = getattr(torch.optim, name)(theirs.parameters(), foreach=False, **kwargs)
    return module, theirs, a, b


def train_both(models, optimizers, inputs):
    for model, opt in zip(models, optimizers):
        opt.zero_grad()
        (model(inputs) ** 2).mean().backward()
        opt.step()


def test_betas_as_a_list_in_groups_and_after_a_json_round_trip():
    torch.manual_seed(0)
    ours, theirs, a, b = twins("Adam", torch.nn.Linear(6, 3), lr=0.01)
    extra = torch.nn.Linear(3, 2)
    extra_twin = copy.deepcopy(extra)
    a.add_param_group({"params": extra.parameters(), "betas": [0.8, 0.99]})
    b.add_param_group({"params": extra_twin.parameters(), "betas": [0.8, 0.99]})
    models = (lambda x: extra(ours(x)), lambda x: extra_twin(theirs(x)))
    for step in range(6):
        if step == 3:  # param groups as a JSON checkpoint stores them: lists
            for opt in (a, b):
                saved = opt.state_dict()
                saved["param_groups"] = json.loads(json.dumps(saved["param_groups"]))
                opt.load_state_dict(saved)
            assert isinstance(a.param_groups[0]["betas"], list)
        train_both(models, (a, b), torch.randn(5, 6))
    assert_close_to_scale(
        [*ours.parameters(), *extra.parameters()],
        [*theirs.parameters(), *extra_twin.parameters()],
        torch.float32,
    )


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("when", [0, 3])
def test_state_reset_by_assigning_a_new_mapping(name, kwargs, when):
    torch.manual_seed(0)
    ours, theirs, a, b = twins(name, torch.nn.Linear(6, 3), **kwargs)
    for step in range(6):
        if step == when:
            a.state = collections.defaultdict(dict)
            b.state = collections.defaultdict(dict)
        train_both((ours, theirs), (a, b), torch.randn(5, 6))
    assert_close_to_scale(list(ours.parameters()), list(theirs.parameters()), torch.float32)
    if name != "SGD":
        assert a.state[ours.weight]["step"].item() == 6 - when


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=IDS)
def test_contiguous_state_resumed_into_a_channels_last_model(name, kwargs):
    torch.manual_seed(0)
    ours, theirs, a, b = twins(name, torch.nn.Conv2d(3, 4, 3), **kwargs)
    inputs = torch.randn(2, 3, 7, 7)
    train_both((ours, theirs), (a, b), inputs)
    saved = copy.deepcopy(b.state_dict())  # contiguous state, from torch
    for model in (ours, theirs):
        model.to(memory_format=torch.channels_last)
    assert not ours.weight.is_contiguous()
    a = getattr(fusedoptim, name)(ours.parameters(), **kwargs)
    b = getattr(torch.optim, name)(theirs.parameters(), foreach=False, **kwargs)
    for opt in (a, b):
        opt.load_state_dict(copy.deepcopy(saved))
    for _ in range(4):
        train_both((ours, theirs), (a, b), inputs.to(memory_format=torch.channels_last))
    assert_close_to_scale(list(ours.parameters()), list(theirs.parameters()), torch.float32)
    keys = [key for key in b.state[theirs.weight] if key != "step"]
    assert_close_to_scale(
        [a.state[ours.weight][key] for key in keys],
        [b.state[theirs.weight][key] for key in keys],
        torch.float32,
    )


GRADS_IN_ANOTHER_LAYOUT = {
    "transposed": lambda g: g.t().contiguous().t(),
    "expanded": lambda g: g[:1, :1].expand(g.shape),
    "strided slice": lambda g: torch.stack([g, g], dim=-1)[..., 0],
}


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("layout", GRADS_IN_ANOTHER_LAYOUT)
def test_grads_assigned_in_another_layout(name, kwargs, layout):
    gen = torch.Generator().manual_seed(1)
    values = [torch.randn(7, 5, generator=gen), torch.randn(33, 17, generator=gen)]
    ours, theirs = twin_params(values)
    a = getattr(fusedoptim, name)(ours, **kwargs)
    b = getattr(torch.optim, name)(theirs, foreach=False, **kwargs)
    make = GRADS_IN_ANOTHER_LAYOUT[layout]
    for step in range(6):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            # Plain grads first (the group gets a plan), then the odd layout.
            p.grad = make(g) if step >= 2 else g.clone()
            q.grad = p.grad.contiguous()  # the same values
        assert step < 2 or ours[0].grad.stride() != ours[0].stride()
        a.step()
        b.step()
    assert_close_to_scale(ours, theirs, torch.float32)
