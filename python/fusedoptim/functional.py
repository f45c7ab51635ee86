"""The fused updates on plain lists of tensors or numpy arrays.

For code that keeps its own optimizer state. Arguments follow
``torch.optim.adam.adam`` / ``torch.optim.sgd.sgd``: state lists are updated
in place, ``state_steps`` holds one 0-dim float32/float64 counter per param
(CPU tensor or numpy array) that each call increments, and ``sgd`` fills
``None`` entries of ``momentum_buffer_list`` with new buffers. Inputs are
checked before anything is written; the tensors a call writes (params and
state, step counters included) must not share memory, as one call updates
them all at once: such lists raise ``ValueError`` naming two of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fusedoptim import _backend, _validation
from fusedoptim._opaque import opaque_to_dynamo

Array = Any  # torch.Tensor or numpy.ndarray


@opaque_to_dynamo
def adam(
    params: Sequence[Array],
    grads: Sequence[Array],
    exp_avgs: Sequence[Array],
    exp_avg_sqs: Sequence[Array],
    max_exp_avg_sqs: Sequence[Array],
    state_steps: Sequence[Array],
    *,
    amsgrad: bool = False,
    beta1: float = 0.9,
    beta2: float = 0.999,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    eps: float = 1e-8,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    l1: float = 0.0,
    num_threads: int | None = None,
) -> None:
    """One Adam step (AdamW with ``decoupled_weight_decay=True``) over lists."""
    _check_hyper(lr=lr, eps=eps, weight_decay=weight_decay, l1=l1)
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"Invalid betas: ({beta1}, {beta2})")
    lists = {"grads": grads, "exp_avgs": exp_avgs, "exp_avg_sqs": exp_avg_sqs}
    lists["state_steps"] = state_steps
    if amsgrad:
        lists["max_exp_avg_sqs"] = max_exp_avg_sqs
    _check_lengths(params, lists)
    for i, p in enumerate(params):
        label = f"params[{i}]"
        companions = [("grad", grads[i]), ("exp_avg", exp_avgs[i]), ("exp_avg_sq", exp_avg_sqs[i])]
        if amsgrad:
            companions.append(("max_exp_avg_sq", max_exp_avg_sqs[i]))
        _validation.check_tensors(label, p, companions)
        _validation.check_step_counter(state_steps[i], label)
    _check_uniform(params, state_steps)
    if not params:
        return
    call = _backend.adam_call(
        params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else [], state_steps
    )
    _backend.adam_step(
        call,
        grads,
        lr=float(lr),
        beta1=float(beta1),
        beta2=float(beta2),
        eps=float(eps),
        weight_decay=float(weight_decay),
        l1=float(l1),
        decoupled_weight_decay=decoupled_weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        num_threads=num_threads,
    )


@opaque_to_dynamo
def adamw(
    params: Sequence[Array],
    grads: Sequence[Array],
    exp_avgs: Sequence[Array],
    exp_avg_sqs: Sequence[Array],
    max_exp_avg_sqs: Sequence[Array],
    state_steps: Sequence[Array],
    *,
    weight_decay: float = 1e-2,
    **kwargs: Any,
) -> None:
    """One AdamW step: Adam with decoupled weight decay ``p *= 1 - lr * weight_decay``."""
    adam(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        state_steps,
        weight_decay=weight_decay,
        decoupled_weight_decay=True,
        **kwargs,
    )


@opaque_to_dynamo
def sgd(
    params: Sequence[Array],
    grads: Sequence[Array],
    momentum_buffer_list: list[Array | None],
    *,
    lr: float = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    l1: float = 0.0,
    num_threads: int | None = None,
) -> None:
    """One SGD step over lists; ``None`` momentum buffers are created in place."""
    _check_hyper(lr=lr, weight_decay=weight_decay, l1=l1)
    if momentum < 0.0:
        raise ValueError(f"Invalid momentum value: {momentum}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    lists: dict[str, Sequence[Any]] = {"grads": grads}
    if momentum != 0:
        lists["momentum_buffer_list"] = momentum_buffer_list
    _check_lengths(params, lists)
    for i, p in enumerate(params):
        companions = [("grad", grads[i])]
        if momentum != 0 and momentum_buffer_list[i] is not None:
            companions.append(("momentum_buffer", momentum_buffer_list[i]))
        _validation.check_tensors(f"params[{i}]", p, companions)
    _check_uniform(params, [])
    if not params:
        return
    # New buffers reach the caller's list only once the step has filled them.
    buffers = list(momentum_buffer_list) if momentum != 0 else []
    new_buffers = [buffer is None for buffer in buffers]
    buffers = [_empty_like(p) if b is None else b for p, b in zip(params, buffers)]
    call = _backend.sgd_call(params, buffers, new_buffers)
    _backend.sgd_step(
        call,
        grads,
        lr=float(lr),
        momentum=float(momentum),
        dampening=float(dampening),
        weight_decay=float(weight_decay),
        l1=float(l1),
        nesterov=nesterov,
        maximize=maximize,
        num_threads=num_threads,
    )
    for i, buffer in enumerate(buffers):
        if new_buffers[i]:
            momentum_buffer_list[i] = buffer


def _empty_like(x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.empty_like(x, memory_format=torch.preserve_format)
    return np.empty_like(x)


def _check_hyper(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0.0:
            raise ValueError(f"Invalid {name} value: {value}")


def _check_lengths(params: Sequence[Any], lists: dict[str, Sequence[Any]]) -> None:
    for name, values in lists.items():
        if len(values) != len(params):
            raise ValueError(f"{name} has {len(values)} entries but params has {len(params)}")


def _check_uniform(params: Sequence[Array], steps: Sequence[Array]) -> None:
    """One fused call needs one dtype and one device across params (and one step dtype)."""
    if not params:
        return
    first = params[0]
    for i, p in enumerate(params):
        if type(p) is not type(first):
            raise TypeError(f"params[{i}]: mixes torch tensors and numpy arrays in one call")
        if p.dtype != first.dtype:
            raise TypeError(
                f"params[{i}] has dtype {p.dtype} but params[0] has {first.dtype}; "
                "call once per dtype"
            )
        if isinstance(p, torch.Tensor) and p.device != first.device:
            raise RuntimeError(f"params[{i}] is on {p.device} but params[0] is on {first.device}")
    for i, s in enumerate(steps):
        if s.dtype != steps[0].dtype:
            raise TypeError(
                f"state_steps[{i}] has dtype {s.dtype} but state_steps[0] has {steps[0].dtype}"
            )
