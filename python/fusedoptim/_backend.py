"""The one door to the native extension ``_C``.

Everything above this module speaks tensors (torch or numpy); everything
below speaks raw addresses, element counts and dtype codes. This module turns
the first into the second, picks the device (CPU threads or a CUDA stream) and
reports what the extension was built with. It performs no validation of its
own beyond what it needs to extract addresses: callers validate first (see
``_validation.py``), so that a refused call has written nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fusedoptim import _C

# Codes shared with csrc/ops/storage.h (enum class DType).
_TORCH_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
_NUMPY_DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}
_STEP_DTYPE_CODES = {torch.float32: 0, torch.float64: 1}
_NUMPY_STEP_DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}

Array = Any  # torch.Tensor or numpy.ndarray


def dtype_code(x: Array) -> int | None:
    """The kernel dtype code of a tensor/array, or None when unsupported."""
    if isinstance(x, torch.Tensor):
        return _TORCH_DTYPE_CODES.get(x.dtype)
    return _NUMPY_DTYPE_CODES.get(x.dtype)


def step_dtype_code(x: Array) -> int | None:
    if isinstance(x, torch.Tensor):
        return _STEP_DTYPE_CODES.get(x.dtype)
    return _NUMPY_STEP_DTYPE_CODES.get(x.dtype)


def address(x: Array) -> int:
    return x.data_ptr() if isinstance(x, torch.Tensor) else x.ctypes.data


def addresses(xs: Sequence[Array]) -> list[int]:
    return [address(x) for x in xs]


_num_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Threads for CPU steps; None follows ``torch.get_num_threads()``."""
    global _num_threads
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"num_threads must be a positive int or None, got {n!r}")
    _num_threads = n


def resolve_num_threads(requested: int | None = None) -> int:
    """The thread count for one call: the argument, else set_num_threads(), else torch's.

    Following torch's intra-op setting by default keeps our pool and torch's
    from asking for more cores than the user allowed.
    """
    if requested is not None:
        return requested
    return _num_threads if _num_threads is not None else torch.get_num_threads()


def device_and_stream(x: Array) -> tuple[int, int]:
    """(-1, 0) for host memory; (cuda index, current stream handle) for CUDA."""
    if isinstance(x, torch.Tensor) and x.device.type == "cuda":
        index = x.device.index if x.device.index is not None else torch.cuda.current_device()
        return index, torch.cuda.current_stream(index).cuda_stream
    return -1, 0


def cuda_compiled() -> bool:
    return bool(_C.build_info()["cuda_compiled"])


def adam_step(
    params: Sequence[Array],
    grads: Sequence[Array],
    exp_avgs: Sequence[Array],
    exp_avg_sqs: Sequence[Array],
    max_exp_avg_sqs: Sequence[Array],
    steps: Sequence[Array],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    l1: float,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
    num_threads: int | None = None,
) -> None:
    """One fused Adam/AdamW step over validated, same-dtype, same-device tensors."""
    if not params:
        return
    device, stream = device_and_stream(params[0])
    _C.adam_step(
        dtype=dtype_code(params[0]),
        numels=[_numel(p) for p in params],
        params=addresses(params),
        grads=addresses(grads),
        exp_avgs=addresses(exp_avgs),
        exp_avg_sqs=addresses(exp_avg_sqs),
        max_exp_avg_sqs=addresses(max_exp_avg_sqs) if amsgrad else [],
        steps=addresses(steps),
        step_dtype=step_dtype_code(steps[0]),
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        l1=l1,
        decoupled_weight_decay=decoupled_weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        num_threads=resolve_num_threads(num_threads),
        device=device,
        stream=stream,
    )


def sgd_step(
    params: Sequence[Array],
    grads: Sequence[Array],
    momentum_buffers: Sequence[Array],
    new_buffers: Sequence[bool],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    l1: float,
    nesterov: bool,
    maximize: bool,
    num_threads: int | None = None,
) -> None:
    """One fused SGD step; ``new_buffers[i]`` marks buffers created this step."""
    if not params:
        return
    device, stream = device_and_stream(params[0])
    _C.sgd_step(
        dtype=dtype_code(params[0]),
        numels=[_numel(p) for p in params],
        params=addresses(params),
        grads=addresses(grads),
        momentum_buffers=addresses(momentum_buffers) if momentum != 0 else [],
        new_buffers=list(new_buffers) if momentum != 0 else [],
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        l1=l1,
        nesterov=nesterov,
        maximize=maximize,
        num_threads=resolve_num_threads(num_threads),
        device=device,
        stream=stream,
    )


def _numel(x: Array) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else x.size


def build_info() -> dict[str, Any]:
    return dict(_C.build_info())


def set_isa(name: str) -> None:
    _C.set_isa(name)
