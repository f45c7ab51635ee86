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


# ---------------------------------------------------------------------------
# metrics: confusion-matrix counting
# ---------------------------------------------------------------------------

# Codes shared with csrc/cpu/confusion_matrix.h (LabelDType, CountDType).
_LABEL_DTYPE_CODES = {torch.int32: 0, torch.int64: 1}
_COUNT_DTYPE_CODES = {torch.int64: 0, torch.float64: 1}


def confusion_matrix_add_(counts, y_true, y_pred, weights=None, num_threads=None):
    """Adds the pairs (y_true[i], y_pred[i]) to ``counts`` (C x C, row = true label).

    ``y_true``/``y_pred``: 1-D int32 or int64 tensors of one dtype, on the device of
    ``counts``; ``counts``: contiguous int64, or float64 when ``weights`` (float64) is given.

    CPU: counts in C++ (per-thread tables). A label outside [0, C) raises ValueError naming
    it, and ``counts`` is left unchanged. Returns None.

    CUDA: counts with torch's device ops, so nothing waits for the GPU. Pairs holding a
    label outside [0, C) are skipped; the return value is a 0-d int64 device tensor with
    their number, for the caller to check when it reads results anyway.
    """
    if counts.device.type != "cpu":
        return _confusion_matrix_add_torch(counts, y_true, y_pred, weights)
    num_classes = counts.shape[0]
    label_code = _LABEL_DTYPE_CODES[y_true.dtype]
    assert y_pred.dtype == y_true.dtype and counts.is_contiguous()
    y_true = y_true.contiguous()
    y_pred = y_pred.contiguous()
    if weights is not None:
        weights = weights.contiguous()
    bad = _C.confusion_matrix_add(
        y_true=y_true.data_ptr(),
        y_pred=y_pred.data_ptr(),
        label_dtype=label_code,
        size=y_true.numel(),
        num_classes=num_classes,
        weights=0 if weights is None else weights.data_ptr(),
        counts=counts.data_ptr(),
        count_dtype=_COUNT_DTYPE_CODES[counts.dtype],
        num_threads=torch.get_num_threads() if num_threads is None else num_threads,
    )
    if bad >= 0:
        t, p = int(y_true[bad]), int(y_pred[bad])
        name, value = ("y_true", t) if not 0 <= t < num_classes else ("y_pred", p)
        raise ValueError(
            f"{name}[{bad}] = {value} is not a class label in [0, num_classes={num_classes})"
        )
    return None


def _confusion_matrix_add_torch(counts, y_true, y_pred, weights=None):
    """The device path of confusion_matrix_add_ (also runs on CPU tensors, for tests).

    [note: no bincount] torch.bincount reads the input's max on the host to size its
    output, a device sync; index_add_ into the fixed C * C table needs none.
    """
    num_classes = counts.shape[0]
    t = y_true.long()
    p = y_pred.long()
    valid = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    index = torch.where(valid, t * num_classes + p, 0)
    if weights is None:
        source = valid.to(counts.dtype)
    else:
        source = torch.where(valid, weights.to(counts.dtype), 0)
    counts.view(-1).index_add_(0, index, source)
    return (~valid).sum()


# ---------------------------------------------------------------------------
# bench: the benchmark references behind `fusedoptim bench` (fusedoptim._bench).
# Not used by the optimizers; float32 CPU tensors only. Each function reads the
# addresses once and returns the call: a reference times the C loop alone, not
# the building of address lists (which costs about 1 us per tensor).
# ---------------------------------------------------------------------------


def bandwidth_probe(inplace, source, scale, num_threads=None):
    """Returns run(): ``a.mul_(scale).add_(source)`` for each of 1 to 3 tensors ``a``,
    in one pass."""
    kwargs = {
        "inplace": addresses(inplace),
        "source": address(source),
        "n": _numel(source),
        "scale": scale,
        "num_threads": resolve_num_threads(num_threads),
    }
    return lambda: _C.bandwidth_probe(**kwargs)


def plain_adamw(
    params, grads, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, num_threads=None
):
    """Returns step(count): a plain C loop doing one AdamW step, ``count`` being the
    new step count (1 first)."""
    kwargs = {
        "numels": [_numel(p) for p in params],
        "params": addresses(params),
        "grads": addresses(grads),
        "exp_avgs": addresses(exp_avgs),
        "exp_avg_sqs": addresses(exp_avg_sqs),
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "eps": eps,
        "weight_decay": weight_decay,
        "num_threads": resolve_num_threads(num_threads),
    }
    return lambda count: _C.plain_adamw(step=count, **kwargs)


def plain_sgd(params, grads, buffers, *, lr, momentum, num_threads=None):
    """Returns step(): a plain C loop doing one SGD step (``buffers`` empty without
    momentum, zeros before the first step)."""
    kwargs = {
        "numels": [_numel(p) for p in params],
        "params": addresses(params),
        "grads": addresses(grads),
        "buffers": addresses(buffers),
        "lr": lr,
        "momentum": momentum,
        "num_threads": resolve_num_threads(num_threads),
    }
    return lambda: _C.plain_sgd(**kwargs)
