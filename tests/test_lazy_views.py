"""Lazily conjugated and negated tensors: their memory is not their value.

``z.conj()`` sets a conjugate bit and ``z.conj().imag`` a negative bit instead
of writing new memory; torch's ops resolve the bits, a fused kernel reads
memory as it is. Autograd hands such grads over (the backward of ``p.conj()``,
and of ``.imag`` for a one-element param, whose strides autograd keeps), so the
optimizers resolve grads on the slow path and the fast path's check sends any
negated grad there. The functional API refuses them by name.
Tolerance: as test_optim_parity (a few float32 ulp of the values' scale).
"""

from __future__ import annotations

import pytest
import torch

import fusedoptim

OPTIMIZERS = [
    (fusedoptim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (fusedoptim.Adam, torch.optim.Adam, dict(lr=0.1)),
    (fusedoptim.AdamW, torch.optim.AdamW, dict(lr=0.1, weight_decay=0.1)),
]
IDS = [f"{fused.__name__}" for fused, _, _ in OPTIMIZERS]


def negated_grad(value: float) -> torch.Tensor:
    """A one-element real tensor equal to `value` whose memory holds -value."""
    z = torch.tensor([complex(0.0, -value)], dtype=torch.complex64)
    g = z.conj().imag
    assert g.is_neg() and g.is_contiguous() and g.item() == value
    return g


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", OPTIMIZERS, ids=IDS)
def test_negated_grads_are_read_by_value_on_every_step(fused_cls, torch_cls, kwargs):
    ours = torch.nn.Parameter(torch.tensor([0.5]))
    theirs = torch.nn.Parameter(torch.tensor([0.5]))
    opt = fused_cls([ours], **kwargs)
    reference = torch_cls([theirs], foreach=False, **kwargs)
    # The first step takes the slow path and plans the group; the later ones run
    # the plan, whose per-step check must send the negated grad to the slow path.
    for step, value in enumerate([2.0, -1.0, 3.0, 0.5]):
        ours.grad = negated_grad(value)
        theirs.grad = torch.tensor([value])
        opt.step()
        reference.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=0, msg=str(step))


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", OPTIMIZERS, ids=IDS)
def test_conjugated_complex_grads_from_autograd_match_torch(fused_cls, torch_cls, kwargs):
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(65, dtype=torch.complex64, generator=gen)
    weights = [torch.randn(65, dtype=torch.complex64, generator=gen) for _ in range(4)]
    ours = torch.nn.Parameter(start.clone())
    theirs = torch.nn.Parameter(start.clone())
    opt = fused_cls([ours], **kwargs)
    reference = torch_cls([theirs], foreach=False, **kwargs)
    for w in weights:
        for p in (ours, theirs):
            p.grad = None
            (p.conj() * w).real.sum().backward()
        assert ours.grad.is_conj()
        # torch.optim.Adam cannot view a conjugated grad as real; give it the value.
        theirs.grad = theirs.grad.resolve_conj()
        opt.step()
        reference.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("role", ["grads", "exp_avgs", "params"])
def test_functional_refuses_negated_tensors_by_name(role):
    tensors = {
        "params": [torch.tensor([0.5])],
        "grads": [torch.tensor([1.0])],
        "exp_avgs": [torch.zeros(1)],
        "exp_avg_sqs": [torch.zeros(1)],
    }
    tensors[role] = [negated_grad(tensors[role][0].item())]
    before = {name: [t.clone() for t in ts] for name, ts in tensors.items()}
    step = [torch.tensor(0.0)]
    with pytest.raises(ValueError, match=rf"{role[:-1]} is a lazily negated view"):
        fusedoptim.functional.adam(
            tensors["params"],
            tensors["grads"],
            tensors["exp_avgs"],
            tensors["exp_avg_sqs"],
            [],
            step,
            lr=0.1,
        )
    for name, ts in tensors.items():
        assert torch.equal(ts[0], before[name][0])
    assert step[0].item() == 0.0


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", OPTIMIZERS, ids=IDS)
def test_negated_grad_from_autograd_matches_torch(fused_cls, torch_cls, kwargs):
    """The imaginary part of a conjugate: autograd hands a one-element param its
    grad as a negated view (for more elements it copies to the param's layout)."""
    other = torch.tensor([0.3])
    weight = torch.tensor([1 + 2j], dtype=torch.complex64)
    ours = torch.nn.Parameter(torch.tensor([0.5]))
    theirs = torch.nn.Parameter(torch.tensor([0.5]))
    opt = fused_cls([ours], **kwargs)
    reference = torch_cls([theirs], foreach=False, **kwargs)
    for _ in range(4):
        for p in (ours, theirs):
            p.grad = None
            (torch.complex(other, p).conj() * weight).real.sum().backward()
        assert ours.grad.is_neg()
        opt.step()
        reference.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=0)
