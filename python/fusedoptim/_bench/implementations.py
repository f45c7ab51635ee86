"""What the suite times: each implementation of one optimizer step, as a callable.

Every implementation of a case steps the same param tensors with the same
gradients, which are set once: the timed call is ``optimizer.step()`` alone,
from Python, overhead included. Each keeps its own optimizer state.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import fusedoptim
from fusedoptim import _backend


@dataclass(frozen=True)
class OptimizerKind:
    name: str
    label: str
    fused_class: type
    torch_class: type
    kwargs: dict = field(default_factory=dict)
    # Tensors read and written in place per element (p; p, buf; p, m, v); the
    # gradient is read once more: bytes = (2 * streams + 1) * element size.
    streams: int = 1

    def bytes_per_element(self, dtype: torch.dtype) -> int:
        return (2 * self.streams + 1) * torch.empty((), dtype=dtype).element_size()


KINDS = {
    "sgd": OptimizerKind("sgd", "SGD", fusedoptim.SGD, torch.optim.SGD, {"lr": 1e-3}, 1),
    "sgd_momentum": OptimizerKind(
        "sgd_momentum",
        "SGD momentum",
        fusedoptim.SGD,
        torch.optim.SGD,
        {"lr": 1e-3, "momentum": 0.9},
        2,
    ),
    "adam": OptimizerKind("adam", "Adam", fusedoptim.Adam, torch.optim.Adam, {"lr": 1e-3}, 3),
    "adamw": OptimizerKind(
        "adamw",
        "AdamW",
        fusedoptim.AdamW,
        torch.optim.AdamW,
        {"lr": 1e-3, "weight_decay": 1e-2},
        3,
    ),
}

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

FUSEDOPTIM = "fusedoptim"
TORCH_FOR_LOOP = "torch for-loop"
TORCH_FOREACH = "torch foreach"
TORCH_FUSED = "torch fused"
PLAIN_C = "plain C loop"
DEEPSPEED = "DeepSpeed CPUAdam"
PROBE = "bandwidth probe"
TORCH_VARIANTS = (TORCH_FOR_LOOP, TORCH_FOREACH, TORCH_FUSED)

# [note: probe size] The probe runs on its own float32 arrays of the workload's
# size per stream, capped at 64 MiB each: past the 36 MiB L3 cache of the
# machines we measure on, a larger array moves at the same rate, and the cap
# saves GBs on GPT-2-sized runs. A workload that fits in cache (500 x 1,000)
# gets a probe that fits in cache too, so its limit is the cache's.
PROBE_MAX_ELEMENTS = 16 * 2**20


@dataclass
class Implementation:
    name: str
    step: Callable[[], None] | None
    skipped: str | None = None  # why it is not timed


def make_params(shapes, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """Params with gradients set once; values in [-1, 1] keep every update normal-range."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.empty(shape, dtype=dtype).uniform_(-1, 1, generator=generator)
        p.grad = torch.empty(shape, dtype=dtype).uniform_(-1, 1, generator=generator)
        params.append(p.requires_grad_())
    return params


def implementations(kind: OptimizerKind, params: list[torch.Tensor]) -> list[Implementation]:
    """fusedoptim, torch's three CPU paths, and the references that apply to this case."""
    dtype = params[0].dtype
    out = [_optimizer(FUSEDOPTIM, lambda: kind.fused_class(params, **kind.kwargs))]
    for name, flags in (
        (TORCH_FOR_LOOP, {"foreach": False}),
        (TORCH_FOREACH, {"foreach": True}),
        (TORCH_FUSED, {"fused": True}),
    ):
        out.append(_optimizer(name, lambda f=flags: kind.torch_class(params, **kind.kwargs, **f)))
    if dtype == torch.float32:
        out.append(Implementation(PLAIN_C, _plain_c(kind, params)))
    else:
        out.append(Implementation(PLAIN_C, None, "float32 only"))
    if kind.name in ("adam", "adamw"):
        out.append(_deepspeed(kind, params))
    return out


def probe(kind: OptimizerKind, params: list[torch.Tensor]) -> tuple[Implementation, int]:
    """The bandwidth line for this case's access pattern, and the bytes one call moves."""
    per_stream_bytes = sum(p.numel() * p.element_size() for p in params)
    n = max(1, min(per_stream_bytes // 4, PROBE_MAX_ELEMENTS))
    arrays = [torch.rand(n) for _ in range(kind.streams)]
    source = torch.rand(n)
    run = _backend.bandwidth_probe(arrays, source, 0.5)
    # Default arguments keep the arrays alive: the C side holds bare addresses.
    return (
        Implementation(PROBE, lambda keep=(arrays, source): run()),
        (2 * kind.streams + 1) * 4 * n,
    )


# [note: verifying the references] A speed ratio means something only against
# an implementation that computes the same step. Before a case is timed, every
# implementation runs a few steps on small params of the case's dtype (sizes
# that exercise vector loops and tails, lr=0.1 so that each update is many
# bf16 ulps) and is compared with torch's for-loop, the reference fusedoptim
# follows. torch 2.13's fused CPU SGD for bf16/fp16 fails this: its vector
# loop never writes the param and reads the bf16 momentum buffer as float32,
# so it moves different bytes and is timed, but marked, not compared.
VERIFY_SHAPES = ((1023,), (65537,))
VERIFY_STEPS = 5
VERIFY_LR = 0.1
# Relative to the params' scale: a few fp32 ulps over the steps; for bf16, a
# few bf16 ulps (the for-loop rounds every op to bf16, the fused kernels once
# per step). A step that is missing or wrong moves params by about lr.
VERIFY_RTOL = {torch.float32: 1e-5, torch.bfloat16: 16 * 2.0**-8}


def wrong_results(kind: OptimizerKind, dtype: torch.dtype) -> dict[str, str]:
    """{implementation: why} for those whose results differ from torch's for-loop;
    see [note: verifying the references]."""
    check = dataclasses.replace(kind, kwargs={**kind.kwargs, "lr": VERIFY_LR})
    names = [i.name for i in implementations(check, make_params(VERIFY_SHAPES, dtype)) if i.step]
    results = {}
    for name in names:
        params = make_params(VERIFY_SHAPES, dtype, seed=1)
        step = next(i.step for i in implementations(check, params) if i.name == name)
        for _ in range(VERIFY_STEPS):
            step()
        results[name] = [p.detach().double() for p in params]
    reference = results.pop(TORCH_FOR_LOOP, None)
    if reference is None:
        return {}
    scale = max(r.abs().max().item() for r in reference)
    wrong = {}
    for name, got in results.items():
        deviation = max((g - r).abs().max().item() for g, r in zip(got, reference)) / scale
        if not deviation <= VERIFY_RTOL[dtype]:
            wrong[name] = (
                f"wrong results: its params differ from {TORCH_FOR_LOOP}'s by {deviation:.2g} "
                f"of their scale after {VERIFY_STEPS} steps (lr={VERIFY_LR})"
            )
    return wrong


def _optimizer(name: str, build: Callable[[], torch.optim.Optimizer]) -> Implementation:
    try:
        optimizer = build()
    except (RuntimeError, ValueError, TypeError) as error:
        return Implementation(name, None, f"{type(error).__name__}: {error}")
    return Implementation(name, optimizer.step)


def _plain_c(kind: OptimizerKind, params: list[torch.Tensor]) -> Callable[[], None]:
    grads = [p.grad for p in params]
    data = [p.detach() for p in params]
    lr = kind.kwargs["lr"]
    if kind.streams == 3:
        exp_avgs = [torch.zeros_like(p) for p in data]
        exp_avg_sqs = [torch.zeros_like(p) for p in data]
        weight_decay = kind.kwargs.get("weight_decay", 0.0) if kind.name == "adamw" else 0.0
        step = _backend.plain_adamw(
            data,
            grads,
            exp_avgs,
            exp_avg_sqs,
            lr=lr,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
            weight_decay=weight_decay,
        )
        count = itertools.count(1)
        # The closure keeps the state tensors alive: the C side holds bare addresses.
        return lambda state=(exp_avgs, exp_avg_sqs): step(next(count))
    buffers = [torch.zeros_like(p) for p in data] if kind.streams == 2 else []
    step = _backend.plain_sgd(data, grads, buffers, lr=lr, momentum=kind.kwargs.get("momentum", 0))
    return lambda state=buffers: step()


def _deepspeed(kind: OptimizerKind, params: list[torch.Tensor]) -> Implementation:
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except Exception as error:  # any failure to import or build means "not available"
        return Implementation(DEEPSPEED, None, f"not available ({type(error).__name__})")
    try:
        optimizer = DeepSpeedCPUAdam(params, adamw_mode=kind.name == "adamw", **kind.kwargs)
    except Exception as error:
        return Implementation(DEEPSPEED, None, f"{type(error).__name__}: {error}")
    return Implementation(DEEPSPEED, optimizer.step)
