"""Norms of parameter and gradient lists in one pass, and ``clip_grad_norm_``.

- ``l1_norm``, ``l2_norm``, ``l2_squared``, ``l1_l2_norms``: the regularization
  terms of a param list, for logging (``l1 * l1_norm(params)``,
  ``0.5 * weight_decay * l2_squared(params)``).
- ``global_grad_norm``: the norm of all gradients taken as one vector; what the
  optimizers' ``max_grad_norm=`` clips with.
- ``clip_grad_norm_``: ``torch.nn.utils.clip_grad_norm_`` with one fused read
  for the norm and one fused write for the scaling.

CPU tensors are reduced by the C++ extension: one parallel pass over
fixed-size chunks of every tensor, summed in double, the chunks combined in a
fixed order, so the result does not depend on the thread count. Other
tensors (CUDA, and tensor subclasses such as the DTensor gradients of FSDP2)
take torch's own multi-tensor path, ``torch._foreach_norm`` followed by
``torch.linalg.vector_norm``, which never synchronizes with the device.

None of these functions is differentiable: they read values for logging and
clipping. Put a penalty that should be trained on into the loss with torch ops.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable
from typing import Union

import torch
from torch import Tensor

from fusedoptim import _backend
from fusedoptim._opaque import opaque_to_dynamo
from fusedoptim._validation import is_dense

__all__ = [
    "clip_grad_norm_",
    "global_grad_norm",
    "l1_l2_norms",
    "l1_norm",
    "l2_norm",
    "l2_squared",
]

Tensors = Union[Tensor, Iterable[Tensor]]

# torch's message for an inf norm over an empty tensor (max has no identity).
_EMPTY_INF_NORM = (
    "_foreach_norm cannot compute the infinity norm on an empty tensor because the "
    "operation does not have an identity"
)


@opaque_to_dynamo
def l1_norm(params: Tensors) -> Tensor:
    """``sum(|p|)`` over every element of every tensor: a 0-dim float32 tensor."""
    return _penalty(params, _backend.NORM_L1, 1.0)


@opaque_to_dynamo
def l2_norm(params: Tensors) -> Tensor:
    """``sqrt(sum(p ** 2))`` over every element of every tensor: a 0-dim float32 tensor."""
    return _penalty(params, _backend.NORM_L2, 2.0)


@opaque_to_dynamo
def l2_squared(params: Tensors) -> Tensor:
    """``sum(p ** 2)`` over every element of every tensor: a 0-dim float32 tensor."""
    return _penalty(params, _backend.NORM_L2_SQUARED, 2.0)


@opaque_to_dynamo
def l1_l2_norms(params: Tensors) -> tuple[Tensor, Tensor]:
    """``(l1_norm(params), l2_norm(params))``, reading each element once on the CPU."""
    tensors = _as_list(params)
    if _fusable(tensors):
        l1, l2 = _backend.norm(tensors, _backend.NORM_L1_AND_L2)
        return _float32(l1, tensors), _float32(l2, tensors)
    return _device_norm(tensors, 1.0), _device_norm(tensors, 2.0)


@opaque_to_dynamo
def global_grad_norm(tensors: Tensors, norm_type: float = 2.0) -> Tensor:
    """The ``norm_type``-norm of all elements of ``tensors`` taken as one vector.

    Args:
        tensors: the gradients (or any tensors); a tensor or an iterable of them.
        norm_type: the p of the p-norm: ``float('inf')`` for the max norm, any
            float torch.linalg.vector_norm accepts.

    Returns:
        A 0-dim float32 tensor on the device of the first tensor (a CPU 0.0 for
        no tensors). CPU tensors are summed in double and rounded once; CUDA
        tensors are reduced by torch with no host synchronization. With DTensor
        inputs (FSDP2 gradients) the result is a DTensor, as with torch's
        ``clip_grad_norm_``; ``.full_tensor()`` gives the global value.

    Raises:
        RuntimeError: for ``norm_type=inf`` when a tensor is empty (torch's rule).
    """
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return torch.tensor(0.0)
    mode = _mode(norm_type)
    if mode is None or not _fusable(tensors):
        return _device_norm(tensors, norm_type)
    return _float32(_fused_norm(tensors, mode, norm_type), tensors)


@opaque_to_dynamo
@torch.no_grad()
def clip_grad_norm_(
    parameters: Tensors,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    r"""Clip the gradient norm of an iterable of parameters, as ``torch.nn.utils.clip_grad_norm_``.

    The norm is computed over the gradients of all parameters as if they were
    concatenated into a single vector, and every gradient is multiplied in place by

    .. math::
        \min\left(\frac{max\_norm}{total\_norm + 10^{-6}}, 1\right)

    computed with torch's ops in the norm's dtype, so the multiply rounds exactly
    as torch's does. CPU gradients are read once (one multi-tensor reduction,
    summed in double) and written once (skipped when the coefficient is 1).
    Gradients on other devices, of other layouts or tensor subclasses (FSDP2's
    DTensors), and norm types that are not positive (0, negative, -inf), are
    handed to ``torch.nn.utils.clip_grad_norm_`` itself.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` is clipped.
        max_norm: max norm of the gradients.
        norm_type: p of the p-norm; ``float('inf')`` for the max norm (default: 2.0).
        error_if_nonfinite: raise ``RuntimeError`` (before any gradient is changed)
            when the total norm is nan or inf (default: False).
        foreach: accepted for drop-in compatibility; passed on to torch for the
            gradients torch handles.

    Returns:
        The total norm of the gradients, a 0-dim tensor on the first gradient's
        device, in the dtype torch returns (the promoted dtype of the gradients).
        Compared with torch, whose CPU norms accumulate fp32/fp16/bf16 in float, it
        is the correctly rounded value: the two differ by torch's own rounding error.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and not parameters:
            warnings.warn(
                "`parameters` is an empty generator, no gradient clipping will occur.",
                stacklevel=3,
            )
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return torch.tensor(0.0)
    mode = _mode(norm_type)
    if mode is None or not _fusable(grads):
        return torch.nn.utils.clip_grad_norm_(
            parameters, max_norm, norm_type, error_if_nonfinite, foreach
        )

    value = _fused_norm(grads, mode, norm_type)
    total_norm = torch.tensor(value, dtype=_promoted_dtype(grads))
    if error_if_nonfinite and not math.isfinite(total_norm.item()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from "
            "`parameters` is non-finite, so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`"
        )
    # torch's formula, op for op: the same roundings in the norm's dtype.
    clip_coef = float(max_norm) / (total_norm + 1e-6)
    clip_coef_clamped = torch.clamp(clip_coef, max=1.0)
    coef = clip_coef_clamped.item()
    # Multiplying by exactly 1 changes no value, so that write pass is skipped.
    if coef != 1.0:
        _backend.scale_(grads, coef)
    return total_norm


def _as_list(tensors: Tensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _mode(norm_type: float) -> int | None:
    """The fused kernel's mode for a norm type, or None for torch's path."""
    if norm_type == math.inf:
        return _backend.NORM_INF
    if norm_type == 1.0:
        return _backend.NORM_L1
    if norm_type == 2.0:
        return _backend.NORM_L2
    # p = 0 (torch counts nonzero per-tensor norms), p < 0 and -inf keep torch's
    # exact semantics by going to torch.
    if 0.0 < norm_type < math.inf:
        return _backend.NORM_LP
    return None


def _fusable(tensors: list[Tensor]) -> bool:
    """True when the C++ reduction can read every tensor's memory directly."""
    for t in tensors:
        # Exact types: subclasses (DTensor, fake or functional tensors) keep
        # torch's dispatch, which knows what their memory means.
        if type(t) not in (Tensor, torch.nn.Parameter):
            return False
        if t.device.type != "cpu" or t.layout != torch.strided:
            return False
        if _backend.dtype_code(t) is None or not is_dense(t):
            return False
    return True


def _fused_norm(tensors: list[Tensor], mode: int, norm_type: float) -> float:
    if mode == _backend.NORM_INF and any(t.numel() == 0 for t in tensors):
        raise RuntimeError(_EMPTY_INF_NORM)
    return _backend.norm(tensors, mode, norm_type)[0]


def _promoted_dtype(tensors: list[Tensor]) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _float32(value: float, tensors: list[Tensor]) -> Tensor:
    device = tensors[0].device if tensors else torch.device("cpu")
    return torch.tensor(value, dtype=torch.float32, device=device)


def _penalty(params: Tensors, mode: int, norm_type: float) -> Tensor:
    tensors = _as_list(params)
    if _fusable(tensors):
        return _float32(_backend.norm(tensors, mode, norm_type)[0], tensors)
    if mode == _backend.NORM_L2_SQUARED:
        return _device_norm(tensors, 2.0).square()
    return _device_norm(tensors, norm_type)


def _device_norm(tensors: list[Tensor], norm_type: float) -> Tensor:
    """torch's multi-tensor norm in float32 (no host sync): the non-CPU path."""
    if not tensors:
        return torch.tensor(0.0)
    detached = [t.detach() for t in tensors]
    first = detached[0].device
    by_device: dict[torch.device, list[Tensor]] = {}
    for t in detached:
        by_device.setdefault(t.device, []).append(t)
    norms: list[Tensor] = []
    for group in by_device.values():
        norms.extend(torch._foreach_norm(group, norm_type, dtype=torch.float32))
    return torch.linalg.vector_norm(torch.stack([n.to(first) for n in norms]), norm_type)
