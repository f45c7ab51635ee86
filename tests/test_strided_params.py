"""Params that are views with gaps (``x[:, ::2]``, ``w[..., 0]``): updated as torch.optim does.

Their update runs in a dense staging copy (see [note: staged params] in
optim/_base.py); the state keeps torch's layout, the memory between their
elements is never written, the rest of the group stays fused on its cached
plan, and params that share memory with them keep torch's list order.
Tolerance: as test_optim_parity, relative to each problem's scale (SGD and
fp64 agree to a few ulp, Adam/AdamW fp32 to about an ulp a step).
"""

from __future__ import annotations

import pytest
import torch

import fusedoptim

from optim_reference import (
    Fp32RoundedReference,
    adam_option_grid,
    assert_close_to_scale,
    fused_and_torch_classes,
    option_id,
    sgd_option_grid,
)

STEPS = 25

SGD_OPTIONS = list(sgd_option_grid())
ADAM_OPTIONS = list(adam_option_grid())


def gapped_twins(dtype=torch.float32, seed=0):
    """(ours, theirs, bases): the same values as views with gaps into buffers
    of their own, plus a dense param, and the buffers (to check the gaps)."""
    gen = torch.Generator().manual_seed(seed)
    values = [
        torch.randn(10, 5, 2, generator=gen, dtype=torch.float64),  # w[..., 0]: torch's test
        torch.randn(33, 7, generator=gen, dtype=torch.float64),  # x[::3, 1:]: rows and columns
        torch.randn(1023, generator=gen, dtype=torch.float64),  # x[::2]
        torch.randn(65537, generator=gen, dtype=torch.float64),  # dense, several chunks
    ]
    views = [lambda b: b[..., 0], lambda b: b[::3, 1:], lambda b: b[::2], lambda b: b]
    twins = []
    for _ in range(2):
        bases = [v.to(dtype) for v in values]
        twins.append(([torch.nn.Parameter(view(b)) for view, b in zip(views, bases)], bases))
    (ours, our_bases), (theirs, their_bases) = twins
    assert not ours[0].is_contiguous() and not ours[1].is_contiguous()
    return ours, theirs, our_bases, their_bases


def give_grads(ours, theirs, gen):
    for p, q in zip(ours, theirs):
        g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        p.grad, q.grad = g.clone(), g.clone()


def run(fused_cls, torch_cls, kwargs, dtype=torch.float32, steps=STEPS):
    ours, theirs, our_bases, their_bases = gapped_twins(dtype)
    a = fused_cls(ours, **kwargs)
    b = torch_cls(theirs, foreach=False, **kwargs)
    gen = torch.Generator().manual_seed(1)
    plans = []
    for _ in range(steps):
        give_grads(ours, theirs, gen)
        a.step()
        b.step()
        plans.append(a._plans.get(0))
        assert_close_to_scale(ours, theirs, dtype, f"{fused_cls.__name__} {kwargs}")
    # The gaps of each buffer are the same bytes as torch's (never written).
    for view_base, torch_base, p in zip(our_bases, their_bases, ours):
        untouched = torch.ones_like(view_base, dtype=torch.bool)
        untouched[_index_of(p, view_base)] = False
        assert torch.equal(view_base[untouched], torch_base[untouched])
    return a, b, ours, theirs, plans


def _index_of(view, base):
    """A boolean mask of base's elements that `view` covers."""
    marks = torch.zeros(base.numel(), dtype=torch.bool)
    offsets = torch.zeros((), dtype=torch.int64)
    for n, stride in zip(view.shape, view.stride()):
        offsets = offsets.unsqueeze(-1) + torch.arange(n) * stride
    marks[(offsets + view.storage_offset() - base.storage_offset()).flatten()] = True
    return marks.view(base.shape)


@pytest.mark.parametrize("kwargs", SGD_OPTIONS, ids=option_id)
def test_sgd_updates_views_with_gaps_as_torch(kwargs):
    a, _, ours, _, plans = run(fusedoptim.SGD, torch.optim.SGD, kwargs)
    assert plans[1] is plans[-1] is not None  # the dense param stays on one plan
    assert [p for _, p in plans[-1].outside] == ours[:3]


@pytest.mark.parametrize(
    ("name", "kwargs"), ADAM_OPTIONS, ids=lambda v: option_id(v) if isinstance(v, dict) else v
)
def test_adam_updates_views_with_gaps_as_torch(name, kwargs):
    a, b, ours, theirs, plans = run(*fused_and_torch_classes(name), kwargs)
    assert plans[1] is plans[-1] is not None
    for p, q in zip(ours, theirs):  # torch's state layout, same values
        for key, value in b.state[q].items():
            assert a.state[p][key].stride() == value.stride(), key
            torch.testing.assert_close(a.state[p][key], value, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_other_dtypes(name, dtype):
    kwargs = {"lr": 1e-2, "momentum": 0.9} if name == "SGD" else {"lr": 1e-2}
    fused_cls, torch_cls = fused_and_torch_classes(name)
    if dtype == torch.float64:
        run(fused_cls, torch_cls, kwargs, dtype)
        return
    ours, theirs, _, _ = gapped_twins(dtype)
    a = fused_cls(ours, **kwargs)
    reference = Fp32RoundedReference(torch_cls, theirs, **kwargs)
    gen = torch.Generator().manual_seed(2)
    for _ in range(10):
        give_grads(ours, theirs, gen)
        a.step()
        reference.step()
        assert_close_to_scale(ours, theirs, dtype)


def test_torch_suite_scenario_goes_right_direction():
    # TestOptimRenewed.test_forloop_goes_right_direction with contiguous=False.
    for cls, kwargs in [
        (fusedoptim.SGD, {"lr": 1e-3, "momentum": 0.9}),
        (fusedoptim.Adam, {"lr": 1e-2, "amsgrad": True}),
        (fusedoptim.AdamW, {"lr": torch.tensor(1e-2), "l1": 1e-4}),
    ]:
        torch.manual_seed(0)
        weight = torch.nn.Parameter(torch.randn((10, 5, 2))[..., 0])
        bias = torch.nn.Parameter(torch.randn((10, 2))[..., 0])
        x = torch.randn(5)
        opt = cls([weight, bias], **kwargs)

        def closure(opt=opt, weight=weight, bias=bias, x=x):
            opt.zero_grad()
            loss = (weight.mv(x) + bias).pow(2).sum()
            loss.backward()
            return loss

        initial = closure().item()
        for _ in range(20):
            opt.step(closure)
        assert closure().item() < initial


def test_complex_view_with_gaps():
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(6, 8, generator=gen, dtype=torch.complex64)
    ours = [torch.nn.Parameter(base.clone()[:, ::2])]
    theirs = [torch.nn.Parameter(base.clone()[:, ::2])]
    a = fusedoptim.Adam(ours, lr=1e-2)
    b = torch.optim.Adam(theirs, lr=1e-2, foreach=False)
    for _ in range(10):
        g = torch.randn(ours[0].shape, generator=gen, dtype=torch.complex64)
        ours[0].grad, theirs[0].grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert_close_to_scale(
        [torch.view_as_real(ours[0])], [torch.view_as_real(theirs[0])], torch.float32
    )


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_views_that_interleave_or_overlap_keep_list_order(name):
    # x[:, ::2] and x[:, 1::2] interleave; x[2:5] overlaps both: torch updates
    # them one after the other, and so do the successive fused calls.
    kwargs = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {"lr": 0.1}
    fused_cls, torch_cls = fused_and_torch_classes(name)
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(9, 6, generator=gen)
    x, y = base.clone(), base.clone()
    ours = [
        torch.nn.Parameter(x[:, ::2]),
        torch.nn.Parameter(x[:, 1::2]),
        torch.nn.Parameter(x[2:5]),
    ]
    theirs = [
        torch.nn.Parameter(y[:, ::2]),
        torch.nn.Parameter(y[:, 1::2]),
        torch.nn.Parameter(y[2:5]),
    ]
    a = fused_cls(ours, **kwargs)
    b = torch_cls(theirs, foreach=False, **kwargs)
    for _ in range(8):
        give_grads(ours, theirs, gen)
        a.step()
        b.step()
        assert_close_to_scale([x], [y], torch.float32)
    assert 0 not in a._plans  # the group stays on the slow path, in list order


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_state_dict_moves_between_torch_and_fusedoptim_mid_training(name):
    kwargs = {"lr": 1e-2, "momentum": 0.9} if name == "SGD" else {"lr": 1e-2}
    fused_cls, torch_cls = fused_and_torch_classes(name)
    ours, theirs, _, _ = gapped_twins()
    a = fused_cls(ours, **kwargs)
    b = torch_cls(theirs, foreach=False, **kwargs)
    gen = torch.Generator().manual_seed(6)
    for step in range(12):
        give_grads(ours, theirs, gen)
        a.step()
        b.step()
        if step == 4:  # swap the optimizers' states both ways
            saved_ours, saved_theirs = a.state_dict(), b.state_dict()
            a.load_state_dict(saved_theirs)
            b.load_state_dict(saved_ours)
    assert_close_to_scale(ours, theirs, torch.float32)


def test_max_grad_norm_counts_the_staged_grads():
    ours, theirs, _, _ = gapped_twins()
    a = fusedoptim.AdamW(ours, lr=1e-2, max_grad_norm=0.5)
    b = torch.optim.AdamW(theirs, lr=1e-2, foreach=False)
    gen = torch.Generator().manual_seed(7)
    for _ in range(6):
        give_grads(ours, theirs, gen)
        torch.nn.utils.clip_grad_norm_(theirs, 0.5)
        a.step()
        b.step()
    assert a._plans.get(0) is not None and a._plans[0].outside
    assert_close_to_scale(ours, theirs, torch.float32)


def test_grad_scaler_skipped_step_leaves_staged_params_alone():
    ours, theirs, _, _ = gapped_twins()
    a = fusedoptim.SGD(ours, lr=0.1, momentum=0.9)
    b = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, foreach=False)
    scaler_a = torch.amp.GradScaler("cpu", init_scale=4.0)
    scaler_b = torch.amp.GradScaler("cpu", init_scale=4.0)
    gen = torch.Generator().manual_seed(8)
    for step in range(6):
        give_grads(ours, theirs, gen)
        for scaler in (scaler_a, scaler_b):
            scaler.scale(torch.zeros(()))  # as a scaled loss would; sets the scale up
        if step == 3:
            ours[0].grad[0, 0] = theirs[0].grad[0, 0] = float("inf")
        for scaler, opt in ((scaler_a, a), (scaler_b, b)):
            scaler.step(opt)
            scaler.update()
    assert_close_to_scale(ours, theirs, torch.float32)
