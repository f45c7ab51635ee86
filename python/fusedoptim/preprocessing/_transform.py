"""Where a transform writes (a new array, the input itself, or ``out``) and which path
computes it: the C++ kernel (one read and one write) for C-contiguous host memory, torch
operations for everything else (CUDA tensors, strided views transformed in place)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fusedoptim import _backend
from fusedoptim.preprocessing import _torch_ops
from fusedoptim.preprocessing._inputs import KERNEL_DTYPES, Matrix, first_inf_message


@dataclass
class Plan:
    """One transform: ``op`` with per-feature float64 parameters ``a`` and ``b`` (numpy)
    used in ``math_dtype`` (each operation rounded to the data's dtype), clipped to
    ``clip``."""

    op: int
    a: np.ndarray
    b: np.ndarray
    math_dtype: torch.dtype
    clip: tuple[float, float] | None = None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _span(t: torch.Tensor) -> tuple[int, int]:
    if t.numel() == 0:
        return (t.data_ptr(), t.data_ptr())
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return (t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size())


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.stride() == b.stride() and a.shape == b.shape


def _as_out(out, m: Matrix) -> torch.Tensor:
    """The tensor view of ``out``, checked: the caller's kind, X's shape, the output dtype,
    X's device, writeable, and either X itself or not overlapping it."""
    x = m.tensor
    if m.kind == "torch":
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out: X is a torch tensor, so out must be one too, got {type(out)}")
        dst = out
        if out.requires_grad:
            raise ValueError("out: requires grad; pass a tensor that does not (or its .detach())")
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(
                f"out: X is a numpy array or list, so out must be a numpy array, got {type(out)}"
            )
        if not out.flags.writeable:
            raise ValueError("out: is read-only")
        if out.dtype not in (np.float16, np.float32, np.float64) or not out.dtype.isnative:
            raise ValueError(f"out: expected dtype {_dtype_name(x.dtype)}, got {out.dtype}")
        if min(out.strides, default=0) < 0:
            raise ValueError("out: has negative strides")
        dst = torch.from_numpy(out)
    if tuple(dst.shape) != tuple(x.shape):
        raise ValueError(f"out: expected shape {tuple(x.shape)}, got {tuple(dst.shape)}")
    if dst.dtype != x.dtype:
        raise ValueError(
            f"out: expected dtype {_dtype_name(x.dtype)}, got {_dtype_name(dst.dtype)}"
        )
    if dst.device != x.device:
        raise ValueError(f"out: expected device {x.device}, got {dst.device}")
    if not _same_view(dst, x):
        (a0, a1), (b0, b1) = _span(dst), _span(x)
        if a0 < b1 and b0 < a1:
            raise ValueError("out: overlaps X without being X itself; pass X or separate memory")
    return dst


def destination(m: Matrix, copy: bool, out):
    """(tensor to write, object to return). copy=False writes into X itself when X is
    writeable float data (numpy or torch), as scikit-learn's copy=False does; an input
    that had to be converted (a list, integers, negative strides) is written in its
    fresh conversion either way."""
    x = m.tensor
    if out is not None:
        return _as_out(out, m), out
    if not m.shares_memory:
        return x, (x.numpy() if m.kind == "numpy" else x)
    if not copy:
        if m.kind == "torch":
            if m.source.requires_grad:
                raise ValueError(
                    "X: requires grad, so it cannot be transformed in place; use copy=True "
                    "or pass X.detach()"
                )
            return x, m.source
        if m.source.flags.writeable:
            return x, m.source
    if m.kind == "numpy":
        arr = np.empty(tuple(x.shape), dtype=m.source.dtype)
        return torch.from_numpy(arr), arr
    dst = torch.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    return dst, dst


def run(x: torch.Tensor, dst: torch.Tensor, plan: Plan, device_params, name="X") -> None:
    """dst <- plan(x). ``device_params()`` gives (a, b) as tensors on x's device in the
    math dtype (cached by the scaler). Raises ValueError naming the first +-inf of x; X is
    then unchanged (in place, the check comes first)."""
    kernel = x.dtype in KERNEL_DTYPES and plan.math_dtype in KERNEL_DTYPES
    if kernel and x.device.type == "cpu" and x.is_contiguous() and dst.is_contiguous():
        math_double = plan.math_dtype == torch.float64
        bad = _backend.scaler_transform(
            x, dst, plan.op, plan.a, plan.b, math_double=math_double, clip=plan.clip
        )
    else:
        a, b = device_params()
        bad = _torch_ops.transform(
            x, dst, plan.op, a, b, clip=plan.clip, check_inf=x.device.type == "cpu"
        )
    if bad >= 0:
        raise ValueError(first_inf_message(bad, x.shape[1], name))
