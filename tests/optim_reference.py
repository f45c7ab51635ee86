"""Shared by the optimizer tests: param factories, torch references, tolerances."""

from __future__ import annotations

import itertools

import torch

import fusedoptim

# Odd sizes hit every vector tail; 65537 spans several 32K-element chunks.
SIZES = (1, 7, 1023, 65537)

# [note: tolerances] fp32/fp64 are compared with torch.optim (foreach=False)
# relative to each tensor's scale (max |p|): fusedoptim computes every torch
# op in the same order, fusing multiply-adds where torch does, but its sqrt is
# correctly rounded (torch's vectorized one is not) and it multiplies by the
# reciprocal bias correction where torch divides, so Adam differs by about an
# ulp per step (SGD is bit-identical). Measured worst cases: fp32 1.1e-7,
# fp64 3.0e-16 in test_optim_parity (100 steps, every option); fp32 5.2e-7
# over the whole suite (randomized hyperparameters included). Half types are compared with the
# fp32 computation rounded once per step (what fusedoptim promises), allowing
# one or two units in the last place of the half type.
SCALE_RTOL = {
    torch.float32: 2e-6,
    torch.float64: 1e-14,
    torch.bfloat16: 2 * 2.0**-8,
    torch.float16: 2 * 2.0**-11,
}

HALF_TYPES = (torch.float16, torch.bfloat16)


def make_params(dtype, sizes=SIZES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=gen, dtype=torch.float64).to(dtype) for n in sizes]


def random_grads(params, gen):
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) for p in params]


def twin_params(values):
    """(ours, theirs): two lists of params holding copies of the same values."""
    return [torch.nn.Parameter(v.clone()) for v in values], [
        torch.nn.Parameter(v.clone()) for v in values
    ]


def run_twins(fused_cls, torch_cls, kwargs, seed, steps):
    """fp32 params of odd sizes and their grads drawn from one seeded generator,
    stepped by both optimizers; the results must agree to the fp32 tolerance."""
    gen = torch.Generator().manual_seed(seed)
    values = [torch.randn(n, generator=gen) for n in (1, 7, 1023)]
    ours, theirs = twin_params(values)
    a = fused_cls(ours, **kwargs)
    b = torch_cls(theirs, foreach=False, **kwargs)
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert_close_to_scale(ours, theirs, torch.float32)


def scale_deviation(actual, expected):
    """max |a - e| over all tensors, divided by the largest |e| (the problem's scale)."""
    scale = max(e.detach().double().abs().max().item() for e in expected)
    worst = max(
        (a.detach().double() - e.detach().double()).abs().max().item()
        for a, e in zip(actual, expected)
    )
    return worst / max(scale, 1e-30)


def assert_close_to_scale(actual, expected, dtype, what=""):
    assert len(actual) == len(expected)
    worst = scale_deviation(actual, expected)
    WORST_SEEN[dtype] = max(WORST_SEEN.get(dtype, 0.0), worst)
    rtol = SCALE_RTOL[dtype]
    assert worst <= rtol, f"{what}: deviation {worst:.3g} x scale > {rtol:.3g}"


# Worst deviation per dtype over the session, printed by conftest at the end
# (the numbers quoted in the tolerance note above).
WORST_SEEN: dict = {}


class Fp32RoundedReference:
    """torch.optim in float32 on float32 copies of half params, rounded back each step.

    This is the contract for fp16/bf16 params: the update is computed in
    float32 from the stored values and rounded once to the storage type.
    """

    def __init__(self, torch_cls, params, **kwargs):
        self.params = params
        self.shadow = [torch.nn.Parameter(p.detach().float()) for p in params]
        self.opt = torch_cls(self.shadow, foreach=False, **kwargs)
        self.dtype = params[0].dtype

    def step(self):
        for p, s in zip(self.params, self.shadow):
            s.data.copy_(p.detach().float())
            s.grad = p.grad.float()
        for s in self.shadow:
            for key, value in self.opt.state[s].items():
                if key != "step" and isinstance(value, torch.Tensor):
                    value.copy_(value.to(self.dtype).float())
        self.opt.step()
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow):
                p.copy_(s.to(self.dtype))


def sgd_option_grid():
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 1e-2), (False, True)
    ):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        if momentum == 0 and dampening != 0:
            continue
        yield dict(
            lr=1e-2,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
        )


def adam_option_grid():
    for name, amsgrad, maximize, weight_decay in itertools.product(
        ("Adam", "AdamW"), (False, True), (False, True), (0.0, 0.1)
    ):
        yield name, dict(lr=1e-2, amsgrad=amsgrad, maximize=maximize, weight_decay=weight_decay)


def option_id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items() if k != "lr")


def fused_and_torch_classes(name):
    return getattr(fusedoptim, name), getattr(torch.optim, name)


def usable_isas() -> list[str]:
    """The compiled CPU kernel builds this CPU can run."""
    info = fusedoptim.info()
    compiled = info["isas_compiled"]
    return compiled[: compiled.index(info["isa_detected"]) + 1]
