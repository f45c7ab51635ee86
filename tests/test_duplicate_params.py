"""Params that share memory. A param listed twice in one group: torch.optim
warns and updates it twice in a row (the second update sees the first one's
moments and step count). Overlapping views of one buffer: torch.optim updates
the shared elements once per view, in list order. The fused step does the
same, from successive calls, so no call ever writes one element from two
threads (fusedoptim/_overlap.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

import fusedoptim
from fusedoptim._overlap import overlap_levels
from fusedoptim.optim._base import Item, fused_calls

from optim_reference import assert_close_to_scale, twin_params

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
    ours, theirs = twin_params(values)
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


@pytest.mark.parametrize(("cls_name", "kwargs"), CASES)
def test_overlapping_views_are_updated_in_list_order_like_torch(cls_name, kwargs):
    """Two params that are overlapping views of one buffer: torch.optim updates
    the shared elements twice, the second time from the first one's result."""
    gen = torch.Generator().manual_seed(1)
    buffer = torch.randn(210_000, generator=gen)
    # The second view starts inside the first one's last chunk, where one call
    # could have two threads run them side by side. These updates are nearly
    # additive, so the order itself is checked exactly by
    # test_overlapping_views_see_each_other_in_list_order.
    spans = [(0, 200_000), (196_000, 206_000), (60_000, 61_000)]
    models = []
    for _ in range(2):
        base = buffer.clone()
        params = [torch.nn.Parameter(base[start:end]) for start, end in spans]
        models.append((base, params + [torch.nn.Parameter(torch.ones(5))]))
    (ours_base, ours), (theirs_base, theirs) = models
    a = getattr(fusedoptim, cls_name)(ours, lr=1e-2, **kwargs)
    b = getattr(torch.optim, cls_name)(theirs, lr=1e-2, foreach=False, **kwargs)
    for _ in range(5):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
        assert_close_to_scale([ours_base], [theirs_base], torch.float32)


def test_overlap_levels_order_every_overlap_and_nothing_else():
    base = torch.zeros(100)
    tensors = [
        base[0:10],  # 0
        base[20:30],  # 1
        base[5:25],  # 2: overlaps 0 and 1
        base[40:50],  # 3
        base[0:10],  # 4: the same memory as 0, and overlaps 2
        base[10:20],  # 5: touches 0 and 1, overlaps 2
        base[60:60],  # 6: empty
        torch.zeros(10),  # 7: other memory
    ]
    assert overlap_levels(tensors) == [0, 0, 1, 0, 2, 2, 0, 0]
    assert overlap_levels([]) == []
    empty = torch.zeros(0)
    assert overlap_levels([empty, torch.zeros(0), empty, empty]) == [0, 0, 1, 2]


def test_an_empty_param_listed_twice_counts_both_steps_like_torch():
    p, q = torch.nn.Parameter(torch.zeros(0)), torch.nn.Parameter(torch.zeros(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = fusedoptim.Adam([p, p], lr=0.1)
        theirs = torch.optim.Adam([q, q], lr=0.1, foreach=False)
    for _ in range(3):
        p.grad, q.grad = torch.zeros(0), torch.zeros(0)
        ours.step()
        theirs.step()
    assert ours.state[p]["step"].item() == theirs.state[q]["step"].item() == 6


def test_fused_calls_run_every_level_after_the_one_before():
    base = torch.zeros(100)
    params = [base[0:10], base[5:15], base[50:60], base[55:65]]
    items = [Item(p, torch.zeros_like(p), None) for p in params]
    keys = ["a", "b", "c", "b"]
    # Level 0: items 0 and 2; level 1: items 1 (overlaps 0) and 3 (overlaps 2),
    # which share key "b" but must still wait for item 2's call.
    assert fused_calls(items, lambda i: keys[i]) == [[0], [2], [1, 3]]


def test_overlapping_views_see_each_other_in_list_order():
    """Order-sensitive: with an L1 step, the shared elements end at 0 when the
    first view is updated first and at 1 the other way round."""
    base = torch.zeros(100_000)
    first = torch.nn.Parameter(base[:80_000])
    second = torch.nn.Parameter(base[40_000:])
    opt = fusedoptim.SGD([first, second], lr=1.0, l1=1.0)
    first.grad = torch.full_like(first, -2.0)  # 0 + 2, then the L1 step: 1
    second.grad = torch.full_like(second, 1.0)  # then 1 - 1 = 0; alone: -1, then 0
    opt.step()
    assert torch.equal(base, torch.zeros(100_000).index_fill_(0, torch.arange(40_000), 1.0))
    assert [batch.positions for batch in opt._plans[0].batches] == [[0], [1]]
