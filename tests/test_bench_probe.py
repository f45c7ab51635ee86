"""The benchmark references in _C (csrc/cpu/bandwidth_probe.cpp): the bandwidth
probe and the plain C AdamW/SGD loops must compute what they claim, or the
suite's "% of limit" and "% of a plain C loop" columns mean nothing."""

import dataclasses

import numpy as np
import pytest
import torch

from fusedoptim import _backend
from fusedoptim._bench import implementations

# 7: serial, under one chunk; 100_003: several 32K chunks with a tail, run threaded.
SIZES = [7, 100_003]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("streams", [1, 2, 3])
def test_probe_updates_each_array_in_place(streams, size, threads):
    gen = torch.Generator().manual_seed(size + streams)
    arrays = [torch.rand(size, generator=gen) for _ in range(streams)]
    source = torch.rand(size, generator=gen)
    expected = [a.numpy() * np.float32(0.5) + source.numpy() for a in arrays]
    _backend.bandwidth_probe(arrays, source, 0.5, num_threads=threads)()
    for a, e in zip(arrays, expected):
        # Built without fp contraction: two roundings, exactly numpy's.
        np.testing.assert_array_equal(a.numpy(), e)


@pytest.mark.parametrize("count", [0, 4])
def test_probe_refuses_wrong_array_counts(count):
    arrays = [torch.zeros(8) for _ in range(count)]
    with pytest.raises(ValueError, match="1 to 3 arrays"):
        _backend.bandwidth_probe(arrays, torch.zeros(8), 0.5)()


def test_probe_refuses_bad_threads():
    with pytest.raises(ValueError, match="num_threads"):
        _backend.bandwidth_probe([torch.zeros(8)], torch.zeros(8), 0.5, num_threads=0)()


def _params(sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=gen) for n in sizes], [
        torch.randn(n, generator=gen) for n in sizes
    ]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_plain_adamw_follows_torch(weight_decay, threads):
    sizes = [1, 1000, 100_003]
    values, grads = _params(sizes, seed=3)
    ours = [v.clone() for v in values]
    m = [torch.zeros_like(v) for v in values]
    v2 = [torch.zeros_like(v) for v in values]
    ref = [v.clone().requires_grad_() for v in values]
    for p, g in zip(ref, grads):
        p.grad = g.clone()
    opt = torch.optim.AdamW(ref, lr=1e-2, weight_decay=weight_decay, foreach=False)
    step = _backend.plain_adamw(
        ours,
        grads,
        m,
        v2,
        lr=1e-2,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=weight_decay,
        num_threads=threads,
    )
    for count in range(1, 21):
        step(count)
        opt.step()
    for a, b in zip(ours, ref):
        # A plain loop rounds in its own order (beta1 * m + (1 - beta1) * g, not
        # torch's lerp): agreement to float32 noise after 20 steps, not to the ulp.
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(m, (opt.state[p]["exp_avg"] for p in ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_plain_sgd_follows_torch(momentum):
    sizes = [5, 100_003]
    values, grads = _params(sizes, seed=4)
    ours = [v.clone() for v in values]
    buffers = [torch.zeros_like(v) for v in values] if momentum else []
    ref = [v.clone().requires_grad_() for v in values]
    for p, g in zip(ref, grads):
        p.grad = g.clone()
    opt = torch.optim.SGD(ref, lr=1e-2, momentum=momentum, foreach=False)
    step = _backend.plain_sgd(ours, grads, buffers, lr=1e-2, momentum=momentum)
    for _ in range(10):
        step()
        opt.step()
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def test_plain_sgd_refuses_buffers_without_momentum():
    p, g = torch.zeros(4), torch.zeros(4)
    with pytest.raises(ValueError, match="buffers"):
        _backend.plain_sgd([p], [g], [torch.zeros(4)], lr=0.1, momentum=0.0)()
    with pytest.raises(ValueError, match="buffers"):
        _backend.plain_sgd([p], [g], [], lr=0.1, momentum=0.9)()


class _SkipsTheUpdate(torch.optim.SGD):
    """A stand-in for a broken reference kernel: it keeps a state and returns,
    writing no param (as torch 2.13's fused CPU SGD does for bf16 params)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["momentum_buffer"] = p.grad.clone()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_suite_marks_references_whose_results_are_wrong(dtype, monkeypatch):
    # A speed ratio against a kernel that computes something else means
    # nothing: the suite verifies every implementation against torch's
    # for-loop before timing and marks those that differ.
    kind = implementations.KINDS["sgd_momentum"]
    assert implementations.wrong_results(kind, dtype).keys() <= {implementations.TORCH_FUSED}
    broken = dataclasses.replace(kind, fused_class=_SkipsTheUpdate)
    wrong = implementations.wrong_results(broken, dtype)
    assert implementations.FUSEDOPTIM in wrong
    assert "wrong results" in wrong[implementations.FUSEDOPTIM]
