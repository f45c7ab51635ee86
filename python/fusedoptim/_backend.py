"""The only module that imports _C: tensors -> pointers, device choice, CPU fallback."""

from __future__ import annotations

import torch

from fusedoptim import _C

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
