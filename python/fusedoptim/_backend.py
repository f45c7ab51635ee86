"""The one door to the native extension ``_C``.

Everything above this module speaks tensors (torch or numpy); everything
below speaks raw addresses, element counts and dtype codes. This module turns
the first into the second, picks the device (CPU threads or a CUDA stream) and
reports what the extension was built with. It performs no validation of its
own beyond what it needs to extract addresses: callers validate first (see
``_validation.py``), so that a refused call has written nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
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


def device_index(x: Array) -> int:
    """-1 for host memory (CPU tensors, numpy arrays), else the CUDA device index."""
    if isinstance(x, torch.Tensor) and x.device.type == "cuda":
        return x.device.index if x.device.index is not None else torch.cuda.current_device()
    return -1


def _on_device(device: int) -> Any:
    """Make ``device`` current around a CUDA call (no-op for the CPU).

    The extension also sets the device itself, but only torch's guard avoids
    creating a context on GPU 0 for a thread that never used CUDA.
    """
    return torch.cuda.device(device) if device >= 0 else contextlib.nullcontext()


def cuda_stream(device: int) -> int:
    """The handle of torch's current stream on ``device`` (0 for the CPU)."""
    return torch.cuda.current_stream(device).cuda_stream if device >= 0 else 0


def cuda_compiled() -> bool:
    return bool(_C.build_info()["cuda_compiled"])


@dataclasses.dataclass(frozen=True)
class Precision:
    """A fused call's mixed precision (csrc/optim_batch.h, Precision): the
    grads' and the float moments' dtypes when they are not the params', the
    half-precision params written from fp32 master params, and each tensor's
    stream of random bits (its position in the optimizer) for stochastic
    rounding."""

    grad_dtype: torch.dtype | None = None
    state_dtype: torch.dtype | None = None
    param_copies: Sequence[torch.Tensor] = ()
    streams: Sequence[int] = ()

    def native(self) -> _C.CallPrecision:
        copies = list(self.param_copies)
        return _C.CallPrecision(
            grad_dtype=_code_or_default(self.grad_dtype),
            state_dtype=_code_or_default(self.state_dtype),
            param_copies=addresses(copies),
            copy_dtype=_code_or_default(copies[0].dtype if copies else None),
            streams=list(self.streams),
        )


PLAIN = Precision()


def _code_or_default(dtype: torch.dtype | None) -> int:
    return -1 if dtype is None else _TORCH_DTYPE_CODES[dtype]


def adam_call(
    params: Sequence[Array],
    exp_avgs: Sequence[Array],
    exp_avg_sqs: Sequence[Array],
    max_exp_avg_sqs: Sequence[Array],
    steps: Sequence[Array],
    grad_positions: Sequence[int] = (),
    precision: Precision = PLAIN,
) -> _C.AdamCall:
    """A fused Adam call's tensors except the grads, checked once by the extension.

    The optimizers keep calls across steps (see optim/_plan.py); the grads,
    which autograd re-creates every step, are passed to each ``adam_step``.
    ``grad_positions`` picks the call's grads from a GradWatch's planned params.
    """
    return _C.AdamCall(
        dtype=dtype_code(params[0]),
        numels=[_numel(p) for p in params],
        params=addresses(params),
        exp_avgs=addresses(exp_avgs),
        exp_avg_sqs=addresses(exp_avg_sqs),
        max_exp_avg_sqs=addresses(max_exp_avg_sqs),
        steps=addresses(steps),
        step_dtype=step_dtype_code(steps[0]),
        device=device_index(params[0]),
        grad_positions=list(grad_positions),
        precision=precision.native(),
    )


def sgd_call(
    params: Sequence[Array],
    momentum_buffers: Sequence[Array],
    new_buffers: Sequence[bool],
    grad_positions: Sequence[int] = (),
    precision: Precision = PLAIN,
    steps: Sequence[torch.Tensor] = (),
) -> _C.SgdCall:
    """A fused SGD call's tensors except the grads (see adam_call).

    ``new_buffers[i]``: tensor i's momentum buffer is created by the first
    step (torch starts it as a copy of the grad); the call remembers that the
    buffers exist once a step has run.
    """
    return _C.SgdCall(
        dtype=dtype_code(params[0]),
        numels=[_numel(p) for p in params],
        params=addresses(params),
        momentum_buffers=addresses(momentum_buffers),
        new_buffers=list(new_buffers) if momentum_buffers else [],
        device=device_index(params[0]),
        grad_positions=list(grad_positions),
        precision=precision.native(),
        steps=addresses(steps),
        step_dtype=step_dtype_code(steps[0]) if steps else 0,
    )


def adam8bit_call(
    params: Sequence[torch.Tensor],
    exp_avg: Sequence[tuple[torch.Tensor, torch.Tensor]],
    exp_avg_sq: Sequence[tuple[torch.Tensor, torch.Tensor]],
    max_exp_avg_sq: Sequence[tuple[torch.Tensor, torch.Tensor]],
    steps: Sequence[torch.Tensor],
    block_size: int,
    grad_positions: Sequence[int] = (),
    precision: Precision = PLAIN,
) -> _C.Adam8bitCall:
    """A fused Adam call with 8-bit moments (see adam_call): each moment is a
    list of (codes, absmax) pairs, one per param (uint8 codes laid out like the
    param, a float32 absmax per block of ``block_size`` elements)."""
    return _C.Adam8bitCall(
        dtype=dtype_code(params[0]),
        block_size=block_size,
        numels=[_numel(p) for p in params],
        params=addresses(params),
        exp_avg_codes=addresses([c for c, _ in exp_avg]),
        exp_avg_absmax=addresses([a for _, a in exp_avg]),
        exp_avg_sq_codes=addresses([c for c, _ in exp_avg_sq]),
        exp_avg_sq_absmax=addresses([a for _, a in exp_avg_sq]),
        max_exp_avg_sq_codes=addresses([c for c, _ in max_exp_avg_sq]),
        max_exp_avg_sq_absmax=addresses([a for _, a in max_exp_avg_sq]),
        steps=addresses(steps),
        step_dtype=step_dtype_code(steps[0]),
        device=device_index(params[0]),
        grad_positions=list(grad_positions),
        precision=precision.native(),
    )


def sgd8bit_call(
    params: Sequence[torch.Tensor],
    momentum_buffers: Sequence[tuple[torch.Tensor, torch.Tensor]],
    new_buffers: Sequence[bool],
    block_size: int,
    grad_positions: Sequence[int] = (),
    precision: Precision = PLAIN,
    steps: Sequence[torch.Tensor] = (),
) -> _C.Sgd8bitCall:
    """A fused SGD call with 8-bit momentum buffers (see sgd_call and adam8bit_call)."""
    return _C.Sgd8bitCall(
        dtype=dtype_code(params[0]),
        block_size=block_size,
        numels=[_numel(p) for p in params],
        params=addresses(params),
        momentum_buffer_codes=addresses([c for c, _ in momentum_buffers]),
        momentum_buffer_absmax=addresses([a for _, a in momentum_buffers]),
        new_buffers=list(new_buffers) if momentum_buffers else [],
        device=device_index(params[0]),
        grad_positions=list(grad_positions),
        precision=precision.native(),
        steps=addresses(steps),
        step_dtype=step_dtype_code(steps[0]) if steps else 0,
    )


# Codes shared with csrc/cpu/quant_kernels.h (enum class MomentKind).
SIGNED_MOMENT = 0
SECOND_MOMENT = 1


def quantize_moment(
    kind: int, values: torch.Tensor, codes: torch.Tensor, absmax: torch.Tensor, block_size: int
) -> None:
    """Encodes dense float32 ``values`` into ``codes`` (uint8, laid out alike) and
    ``absmax`` (float32, one per block of their memory order), on their device."""
    _convert_moment(_C.quantize_moment, kind, values, codes, absmax, block_size)


def dequantize_moment(
    kind: int, codes: torch.Tensor, absmax: torch.Tensor, values: torch.Tensor, block_size: int
) -> None:
    """Decodes what quantize_moment encoded into dense float32 ``values``."""
    _convert_moment(_C.dequantize_moment, kind, values, codes, absmax, block_size)


def _convert_moment(
    convert: Any,
    kind: int,
    values: torch.Tensor,
    codes: torch.Tensor,
    absmax: torch.Tensor,
    block_size: int,
) -> None:
    device = device_index(values)
    with _on_device(device):
        convert(
            kind=kind,
            values=address(values),
            codes=address(codes),
            absmax=address(absmax),
            numel=values.numel(),
            block_size=block_size,
            device=device,
            num_threads=resolve_num_threads(),
            stream=cuda_stream(device),
        )


def grad_watch(
    group_params: list[torch.Tensor], params: list[torch.Tensor], is_outside: list[bool]
) -> _C.GradWatch:
    """The per-step check of a cached plan: ``params`` are the group's params
    that have a grad now (plain, dense, contiguous tensors, real or complex),
    in group order; ``is_outside[i]``: group_params[i] is left to the caller.
    Each grad must keep the dtype it has now (its param's, or another one the
    kernels widen)."""
    return _C.GradWatch(
        group_params=group_params,
        has_grad=[p.grad is not None and not out for p, out in zip(group_params, is_outside)],
        outside=is_outside,
        param_addresses=addresses(params),
        dtypes=[p.grad.dtype for p in params],
        numels=[p.numel() for p in params],
        is_complex=[p.is_complex() for p in params],
        device=params[0].get_device() if params else -1,
    )


Grads = Any  # a GradWatch after a successful collect(), or one tensor/array per call tensor


def _grad_argument(grads: Grads) -> Any:
    return grads if isinstance(grads, _C.GradWatch) else addresses(grads)


def adam_step(
    call: _C.AdamCall,
    grads: Grads,
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
    grad_unscale: float = 1.0,
    grad_clip: float = 1.0,
    num_threads: int | None = None,
    stochastic_round: bool = False,
    seed: int = 0,
) -> None:
    """One fused Adam/AdamW step over ``call``'s tensors (an AdamCall or an
    Adam8bitCall).

    Each grad is multiplied by ``grad_unscale`` (1 / GradScaler scale) and then
    by ``grad_clip`` (the max_grad_norm coefficient) inside the kernel.
    """
    native = _C.adam8bit_step if isinstance(call, _C.Adam8bitCall) else _C.adam_step
    with _on_device(call.device):
        native(
            call,
            _grad_argument(grads),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            l1=l1,
            decoupled_weight_decay=decoupled_weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            grad_unscale=grad_unscale,
            grad_clip=grad_clip,
            num_threads=resolve_num_threads(num_threads),
            stream=cuda_stream(call.device),
            stochastic_round=stochastic_round,
            seed=seed,
        )


def sgd_step(
    call: _C.SgdCall,
    grads: Grads,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    l1: float,
    nesterov: bool,
    maximize: bool,
    grad_unscale: float = 1.0,
    grad_clip: float = 1.0,
    num_threads: int | None = None,
    stochastic_round: bool = False,
    seed: int = 0,
) -> None:
    """One fused SGD step over ``call``'s tensors (see adam_step)."""
    native = _C.sgd8bit_step if isinstance(call, _C.Sgd8bitCall) else _C.sgd_step
    with _on_device(call.device):
        native(
            call,
            _grad_argument(grads),
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            l1=l1,
            nesterov=nesterov,
            maximize=maximize,
            grad_unscale=grad_unscale,
            grad_clip=grad_clip,
            num_threads=resolve_num_threads(num_threads),
            stream=cuda_stream(call.device),
            stochastic_round=stochastic_round,
            seed=seed,
        )


def _numel(x: Array) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else x.size


def version() -> str:
    return _C.__version__


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


def confusion_matrix_add_(
    counts, y_true, y_pred, weights=None, num_threads=None, names=("y_true", "y_pred")
):
    """Adds the pairs (y_true[i], y_pred[i]) to ``counts`` (C x C, row = true label).

    ``y_true``/``y_pred``: 1-D int32 or int64 tensors of one dtype, on the device of
    ``counts``; ``counts``: contiguous int64, or float64 when ``weights`` (float64) is given.

    CPU: counts in C++ (per-thread tables). A label outside [0, C) raises ValueError naming
    it (by the caller's ``names`` of the two arrays), and ``counts`` is left unchanged.
    Returns None.

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
        name, value = (names[0], t) if not 0 <= t < num_classes else (names[1], p)
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
# optimizer plans
# ---------------------------------------------------------------------------


def entries_unchanged(dicts: list[dict], keys: tuple[str, ...], expected: list[Any]) -> bool:
    """True when every dicts[i][keys[k]] is still expected[i * len(keys) + k]."""
    return _C.entries_unchanged(dicts, keys, expected)


# ---------------------------------------------------------------------------
# norms: clip_grad_norm_, the optimizers' max_grad_norm, fusedoptim.penalties
# ---------------------------------------------------------------------------

# Codes shared with csrc/ops/norms.h (enum class NormMode).
NORM_L1 = 0
NORM_L2 = 1
NORM_L2_SQUARED = 2
NORM_LP = 3
NORM_INF = 4
NORM_L1_AND_L2 = 5


def norm(
    tensors: Sequence[torch.Tensor], mode: int, p: float = 2.0, num_threads: int | None = None
) -> tuple[float, float]:
    """The norm of dense CPU tensors (any mix of supported dtypes) taken as one vector.

    One multi-tensor reduction, summed in double. Returns (norm, second): second is
    the L2 norm for NORM_L1_AND_L2 (norm is then the L1 norm), else 0.
    """
    return tuple(
        _C.norm(
            dtypes=[dtype_code(t) for t in tensors],
            numels=[t.numel() for t in tensors],
            data=addresses(tensors),
            mode=mode,
            p=float(p),
            num_threads=resolve_num_threads(num_threads),
        )
    )


def scale_(tensors: Sequence[torch.Tensor], coef: float, num_threads: int | None = None) -> None:
    """tensors[i] *= coef for dense CPU tensors, rounded as torch's mul_ by a 0-dim tensor."""
    _C.scale_(
        dtypes=[dtype_code(t) for t in tensors],
        numels=[t.numel() for t in tensors],
        data=addresses(tensors),
        coef=float(coef),
        num_threads=resolve_num_threads(num_threads),
    )


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


# ---------------------------------------------------------------------------
# preprocessing: the streaming scalers' statistics and transforms (CPU only;
# fusedoptim/preprocessing/_torch_ops.py is the device path)
# ---------------------------------------------------------------------------

# Codes shared with csrc/ops/scaler.h (enum class ScalerOp).
SCALER_SUBTRACT_DIVIDE = 0
SCALER_MULTIPLY_ADD = 1


def scaler_fit(
    x, weights, stats, shift, moments: bool, choose_shift: bool, num_threads: int | None = None
) -> int:
    """Per-feature statistics of ``x`` (C-contiguous (rows, features) float32/float64, host
    memory) written to ``stats`` (C-contiguous (features, 5) float64: weight, mean, m2, min,
    max), NaN skipped, the means relative to ``shift`` (contiguous float64, one per feature;
    with ``choose_shift`` it is first filled from the data). ``weights``: None or one
    float64 per row (contiguous). Returns -1, or the flat index of the first +-inf element
    of ``x`` (``stats`` is then unspecified)."""
    rows, features = x.shape
    return _C.scaler_fit(
        dtype=dtype_code(x),
        rows=rows,
        features=features,
        data=address(x),
        weights=0 if weights is None else address(weights),
        moments=moments,
        stats=address(stats),
        shift=address(shift),
        choose_shift=choose_shift,
        num_threads=resolve_num_threads(num_threads),
    )


def scaler_merge(stats, other) -> None:
    """Merges the statistics array ``other`` into ``stats`` (both (features, 5) float64)."""
    _C.scaler_merge(features=stats.shape[0], stats=address(stats), other=address(other))


def scaler_transform(
    src, dst, op: int, a, b, *, math_double: bool, clip=None, num_threads: int | None = None
) -> int:
    """``dst = (src - a) / b`` (SCALER_SUBTRACT_DIVIDE) or ``src * a + b`` (SCALER_MULTIPLY_ADD)
    per feature, rounded to the data dtype after each operation, clipped to ``clip = (low,
    high)`` if given. src/dst: C-contiguous (rows, features) of one float dtype in host memory,
    possibly the same array; a, b: contiguous float64, one value per feature. Returns -1, or
    the flat index of the first +-inf element of src (in place, nothing is written then)."""
    rows, features = src.shape
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    low, high = (0.0, 0.0) if clip is None else clip
    return _C.scaler_transform(
        dtype=dtype_code(src),
        math_double=math_double,
        op=op,
        rows=rows,
        features=features,
        src=address(src),
        dst=address(dst),
        a=address(a),
        b=address(b),
        clip=clip is not None,
        low=float(low),
        high=float(high),
        num_threads=resolve_num_threads(num_threads),
    )
