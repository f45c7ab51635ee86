"""Checks that run before a fused step writes anything.

A fused call updates many tensors at once, so every tensor of every param
group is checked first; a refused step then leaves params and state exactly as
they were. Messages name the offending parameter the way the user knows it:
its name from ``model.named_parameters()`` when the group has names, else its
position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fusedoptim import _backend

SUPPORTED_DTYPES = (
    "float32, float64, float16 and bfloat16 (complex64/complex128 as their real view)"
)


def is_dense(x: torch.Tensor) -> bool:
    """True when the elements fill their memory exactly once, in any order.

    The kernels walk memory linearly, which is right for any such layout
    (contiguous, channels_last, a transposed weight) as long as the gradient
    and the state share the param's strides.
    """
    if x.is_contiguous():
        return True
    dims = sorted(
        ((stride, size) for stride, size in zip(x.stride(), x.shape) if size != 1),
        key=lambda d: d[0],
    )
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def check_step_counter(step: Any, label: str) -> None:
    if isinstance(step, torch.Tensor):
        ok = (
            step.device.type == "cpu"
            and step.numel() == 1
            and step.dtype
            in (
                torch.float32,
                torch.float64,
            )
        )
    else:
        ok = (
            isinstance(step, np.ndarray)
            and step.size == 1
            and step.dtype
            in (
                np.float32,
                np.float64,
            )
        )
    if not ok:
        raise ValueError(
            f"{label}: the step counter must be a one-element float32/float64 CPU tensor "
            f"(or numpy array), got {_describe(step)}"
        )


# The dtypes a fused kernel mixes: a grad of one of these may update a param of
# another (the kernels widen and compute in float, see csrc/cpu/staged_blocks.h).
MIXABLE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_tensors(
    label: str,
    param: Any,
    companions: Sequence[tuple[str, Any]],
    *,
    writable_companions: bool = True,
    mixed_grads: bool = False,
    state_dtype: torch.dtype | None = None,
) -> None:
    """Check one param against its grad and state tensors.

    ``companions`` are (role, tensor) pairs: the grad and each state tensor,
    which must match the param in kind, dtype, device, shape and memory layout;
    with ``mixed_grads`` the grad may have another of MIXABLE_DTYPES, and the
    state has ``state_dtype`` where it is given (fp32 state of master weights).
    """
    if isinstance(param, torch.Tensor):
        _check_torch(label, param, companions, mixed_grads, state_dtype)
    elif isinstance(param, np.ndarray):
        _check_numpy(label, param, companions, writable_companions)
    else:
        raise TypeError(f"{label}: expected a torch.Tensor or numpy.ndarray, got {type(param)}")


def _check_torch(
    label: str,
    param: torch.Tensor,
    companions: Sequence[tuple[str, Any]],
    mixed_grads: bool = False,
    state_dtype: torch.dtype | None = None,
) -> None:
    if param.layout != torch.strided:
        raise RuntimeError(f"{label}: {param.layout} params are not supported")
    _check_not_negated(label, "param", param)
    if _backend.dtype_code(param) is None:
        raise TypeError(
            f"{label}: dtype {param.dtype} is not supported; supported: {SUPPORTED_DTYPES}"
        )
    if not is_dense(param):
        check_no_self_overlap(label, param)
        raise ValueError(
            f"{label}: the param is a view with gaps (strides {param.stride()} for shape "
            f"{tuple(param.shape)}); the functional API updates memory as it is and needs "
            "params whose elements fill their memory exactly once (the optimizers take such "
            "views: they update a dense copy and write it back)"
        )
    for role, t in companions:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{label}: {role} must be a torch.Tensor like the param, got {type(t)}")
        if t.is_sparse or t.layout != torch.strided:
            raise RuntimeError(
                f"{label}: {role} is sparse ({t.layout}); fusedoptim does not support sparse "
                "gradients (torch.optim.SparseAdam does)"
            )
        _check_not_negated(label, role, t)
        if t.device != param.device:
            raise RuntimeError(
                f"{label}: {role} is on {t.device} but the param is on {param.device}"
            )
        if t.dtype != _expected_dtype(role, t, param, mixed_grads, state_dtype):
            raise TypeError(
                f"{label}: {role} has dtype {t.dtype} but the param has {param.dtype}"
                + (_MIXED_HINT if role == "grad" and mixed_grads else "")
            )
        if t.shape != param.shape:
            raise ValueError(
                f"{label}: {role} has shape {tuple(t.shape)} but the param has {tuple(param.shape)}"
            )
        if not same_layout(t, param):
            raise ValueError(
                f"{label}: {role} has strides {t.stride()} but the param has {param.stride()}; "
                "a fused step needs them laid out alike"
            )


def check_no_self_overlap(label: str, param: torch.Tensor) -> None:
    """Refuses a param in which one memory location holds several elements
    (an ``expand``-ed view), as torch's in-place ops refuse to write it."""
    if any(stride == 0 and n > 1 for stride, n in zip(param.stride(), param.shape)):
        raise ValueError(
            f"{label}: the param is a view in which several elements share one memory location "
            f"(strides {param.stride()} for shape {tuple(param.shape)}), which torch.optim "
            "cannot update in place either; give the optimizer a tensor of its own "
            "(param.data = param.data.clone())"
        )


_MIXED_HINT = (
    "; grads and params may mix float32, float16 and bfloat16, float64 and complex take "
    "grads of their own dtype"
)


def _expected_dtype(
    role: str, t: torch.Tensor, param: torch.Tensor, mixed_grads: bool, state_dtype
) -> torch.dtype:
    if role == "grad":
        mixable = mixed_grads and t.dtype in MIXABLE_DTYPES and param.dtype in MIXABLE_DTYPES
        return t.dtype if mixable else param.dtype
    return state_dtype if state_dtype is not None else param.dtype


def _check_not_negated(label: str, role: str, t: torch.Tensor) -> None:
    """A lazily negated view (``is_neg()``, e.g. ``z.conj().imag``) holds the
    negated values in memory; a kernel reads and writes memory as it is."""
    if t.is_neg():
        raise ValueError(
            f"{label}: {role} is a lazily negated view (is_neg() is True), whose memory holds "
            f"the negated values; pass {role}.resolve_neg()"
        )


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_contiguous() and b.is_contiguous():
        return True
    return all(sa == sb for sa, sb, n in zip(a.stride(), b.stride(), b.shape) if n != 1)


def _check_numpy(
    label: str, param: np.ndarray, companions: Sequence[tuple[str, Any]], writable: bool
) -> None:
    if _backend.dtype_code(param) is None:
        raise TypeError(
            f"{label}: dtype {param.dtype} is not supported; supported: float32, float64, float16"
        )
    if not param.flags.c_contiguous or not param.flags.writeable:
        raise ValueError(f"{label}: numpy params must be C-contiguous and writeable")
    for role, a in companions:
        if not isinstance(a, np.ndarray):
            raise TypeError(
                f"{label}: {role} must be a numpy.ndarray like the param, got {type(a)}"
            )
        if a.dtype != param.dtype:
            raise TypeError(f"{label}: {role} has dtype {a.dtype} but the param has {param.dtype}")
        if a.shape != param.shape:
            raise ValueError(f"{label}: {role} has shape {a.shape} but the param has {param.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{label}: {role} must be C-contiguous")
        if writable and role != "grad" and not a.flags.writeable:
            raise ValueError(f"{label}: {role} must be writeable")


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)} on {x.device}"
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} array of shape {x.shape}"
    return repr(x)
