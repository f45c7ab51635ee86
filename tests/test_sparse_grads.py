"""Sparse grads (nn.Embedding(sparse=True)) in SGD: updated as torch.optim.SGD does.

fusedoptim has no sparse kernel: SGD hands params with a sparse grad to
torch's own single-tensor SGD after the fused calls of their group, so those
params and their (sparse) momentum buffers are bit-identical to torch's; the
dense params of the same group stay on the fused kernels (few-ulp tolerance,
as test_optim_parity). Adam and AdamW refuse sparse grads, as torch's do.
"""

from __future__ import annotations

import copy

import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale, twin_params

ROWS, DIM = 37, 5

OPTIONS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.5, dampening=0.3),
    dict(lr=0.1, momentum=0.9, maximize=True),
]


def sparse_grad(gen, rows=ROWS, dim=DIM, nnz=9):
    """An uncoalesced embedding-style grad: repeated rows, as autograd makes them."""
    index = torch.randint(0, rows, (1, nnz), generator=gen)
    index[0, -1] = index[0, 0]  # a repeated row
    values = torch.randn(nnz, dim, generator=gen)
    return torch.sparse_coo_tensor(index, values, (rows, dim), check_invariants=True)


def twin_models(seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = [torch.randn(ROWS, DIM, generator=gen), torch.randn(7, generator=gen)]
    ours, theirs = twin_params(values)
    return ours, theirs


def give_grads(ours, theirs, gen):
    sparse, dense = sparse_grad(gen), torch.randn(7, generator=gen)
    ours[0].grad, theirs[0].grad = sparse.clone(), sparse.clone()
    ours[1].grad, theirs[1].grad = dense.clone(), dense.clone()


def step_and_compare(ours, theirs, a, b, gen, steps):
    """Steps both with the same grads; the sparse param and its buffer must stay
    bit-identical to torch's (the same torch ops on the same values)."""
    for _ in range(steps):
        give_grads(ours, theirs, gen)
        a.step()
        b.step()
        assert torch.equal(ours[0].detach(), theirs[0].detach())
        assert_buffers_equal(a, b, ours[0], theirs[0])


def assert_buffers_equal(a, b, p, q):
    if "momentum_buffer" not in b.state[q]:
        assert "momentum_buffer" not in a.state[p]
        return
    mine, reference = a.state[p]["momentum_buffer"], b.state[q]["momentum_buffer"]
    assert mine.layout == reference.layout
    assert torch.equal(mine.to_dense(), reference.to_dense())


@pytest.mark.parametrize("kwargs", OPTIONS, ids=lambda kw: ",".join(kw))
def test_sparse_and_dense_params_in_one_group_follow_torch(kwargs):
    ours, theirs = twin_models()
    a = fusedoptim.SGD(ours, **kwargs)
    b = torch.optim.SGD(theirs, foreach=False, **kwargs)
    step_and_compare(ours, theirs, a, b, torch.Generator().manual_seed(1), steps=30)
    assert_close_to_scale([ours[1]], [theirs[1]], torch.float32)


def test_embedding_trained_from_autograd_matches_torch():
    torch.manual_seed(0)
    model = torch.nn.Embedding(ROWS, DIM, sparse=True)
    reference = copy.deepcopy(model)
    a = fusedoptim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    b = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(10):
        index = torch.randint(0, ROWS, (4, 3))
        for m, opt in ((model, a), (reference, b)):
            opt.zero_grad()
            (m(index) ** 2).sum().backward()
            opt.step()
        assert model.weight.grad.is_sparse
        assert torch.equal(model.weight.detach(), reference.weight.detach())


def test_state_dict_round_trips_with_torch_mid_training():
    ours, theirs = twin_models()
    kwargs = dict(lr=0.1, momentum=0.9)
    a = fusedoptim.SGD(ours, **kwargs)
    b = torch.optim.SGD(theirs, foreach=False, **kwargs)
    gen = torch.Generator().manual_seed(2)
    step_and_compare(ours, theirs, a, b, gen, steps=3)
    # Swap: each continues from the other's state dict.
    a_state, b_state = copy.deepcopy(a.state_dict()), copy.deepcopy(b.state_dict())
    a.load_state_dict(b_state)
    b.load_state_dict(a_state)
    step_and_compare(ours, theirs, a, b, gen, steps=3)


def test_grad_scaler_unscales_sparse_grads_like_torch():
    # torch.optim.SGD has GradScaler unscale its grads in place; fusedoptim
    # gets the scale and unscales inside the step. Two independent losses keep
    # the embedding's grads free of the dense params' few-ulp deviation.
    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {"embedding": torch.nn.Embedding(ROWS, DIM, sparse=True), "linear": torch.nn.Linear(3, 2)}
    )
    reference = copy.deepcopy(model)
    a = fusedoptim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    b = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, foreach=False)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2) for _ in (a, b)]
    for step in range(8):
        index, x = torch.randint(0, ROWS, (4, 3)), torch.randn(6, 3)
        for m, opt, scaler in zip((model, reference), (a, b), scalers):
            opt.zero_grad()
            loss = (m["embedding"](index) ** 2).sum() + (m["linear"](x) ** 2).sum()
            if step == 3:
                loss = loss * float("inf")  # a skipped step
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        assert scalers[0].get_scale() == scalers[1].get_scale()
        assert torch.equal(
            model["embedding"].weight.detach(), reference["embedding"].weight.detach()
        )
    assert_close_to_scale(
        list(model["linear"].parameters()), list(reference["linear"].parameters()), torch.float32
    )


def test_plan_keeps_sparse_params_outside_and_follows_grad_layout_changes():
    # The group is planned with its sparse param outside; a param whose grad
    # turns dense (or sparse) sends the step to the slow path, which re-plans.
    # No momentum: torch.optim.SGD cannot add a dense grad to a sparse buffer.
    ours, theirs = twin_models()
    a = fusedoptim.SGD(ours, lr=0.1)
    b = torch.optim.SGD(theirs, lr=0.1, foreach=False)
    gen = torch.Generator().manual_seed(4)
    plans = []
    for step in range(12):
        give_grads(ours, theirs, gen)
        if step in (6, 7):
            ours[0].grad, theirs[0].grad = ours[0].grad.to_dense(), theirs[0].grad.to_dense()
        a.step()
        b.step()
        plans.append(a._plans.get(0))
        assert_close_to_scale(ours, theirs, torch.float32)
    assert plans[1] is plans[5] and [p for _, p in plans[5].outside] == [ours[0]]
    assert plans[6] is plans[7] and not plans[7].outside
    assert plans[8] is plans[11] and plans[8] is not plans[5] and plans[8].outside


def test_dense_grad_over_a_sparse_momentum_buffer_is_refused_before_writing():
    ours, theirs = twin_models()
    a = fusedoptim.SGD(ours, lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(9)
    give_grads(ours, theirs, gen)
    a.step()
    give_grads(ours, theirs, gen)
    ours[0].grad = ours[0].grad.to_dense()
    before = [p.detach().clone() for p in ours]
    with pytest.raises(ValueError, match=r"params\[0\].*momentum_buffer is sparse"):
        a.step()
    assert all(torch.equal(x, p.detach()) for x, p in zip(before, ours))


def test_sparse_param_checked_on_the_plan_every_step():
    ours, theirs = twin_models()
    a = fusedoptim.SGD(ours, lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(8)
    for _ in range(3):
        give_grads(ours, theirs, gen)
        a.step()
    assert a._plans[0].outside
    a.param_groups[0]["weight_decay"] = 0.01
    give_grads(ours, theirs, gen)
    before = [p.detach().clone() for p in ours]
    with pytest.raises(ValueError, match=r"params\[0\] of param group 0: grad is sparse"):
        a.step()
    assert all(torch.equal(x, p.detach()) for x, p in zip(before, ours))


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (dict(weight_decay=0.1), "needs weight_decay=0"),
        (dict(l1=0.1), "needs l1=0"),
        (dict(max_grad_norm=1.0), "needs max_grad_norm=None"),
    ],
)
def test_options_torch_cannot_apply_to_sparse_grads_are_refused_before_writing(option, match):
    ours, theirs = twin_models()
    dense = torch.nn.Parameter(torch.randn(4))
    a = fusedoptim.SGD([{"params": [dense]}, {"params": ours, **option}], lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(5)
    give_grads(ours, theirs, gen)
    dense.grad = torch.randn(4)
    before = [p.detach().clone() for p in [dense, *ours]]
    with pytest.raises(ValueError, match=rf"params\[0\] of param group 1: grad is sparse.*{match}"):
        a.step()
    assert all(torch.equal(x, p.detach()) for x, p in zip(before, [dense, *ours]))
    assert not a.state


def test_nesterov_with_a_dense_buffer_and_a_sparse_grad_is_refused_before_writing():
    ours, theirs = twin_models()
    a = fusedoptim.SGD(ours, lr=0.1, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(6)
    give_grads(ours, theirs, gen)
    ours[0].grad = ours[0].grad.to_dense()  # the first step makes a dense buffer
    a.step()
    give_grads(ours, theirs, gen)
    before = [p.detach().clone() for p in ours]
    with pytest.raises(ValueError, match=r"params\[0\].*momentum_buffer is dense"):
        a.step()
    assert all(torch.equal(x, p.detach()) for x, p in zip(before, ours))


@pytest.mark.parametrize("cls", [fusedoptim.Adam, fusedoptim.AdamW])
def test_adam_refuses_sparse_grads_like_torch(cls):
    ours, theirs = twin_models()
    a = cls(ours, lr=0.1)
    give_grads(ours, theirs, torch.Generator().manual_seed(7))
    with pytest.raises(RuntimeError, match="sparse"):
        a.step()
    with pytest.raises(RuntimeError, match="sparse"):
        getattr(torch.optim, cls.__name__)(theirs, lr=0.1).step()
