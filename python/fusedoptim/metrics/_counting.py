"""Per-class counts for the functional API, which (like scikit-learn) learns the
classes from the data: the sorted union of y_true, y_pred and any requested labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fusedoptim import _backend
from fusedoptim.metrics._inputs import is_integral, to_tensor, whole_to_int64

# [note: class space] Non-negative labels are counted as they are, in a table sized by
# the largest label, when that table is not much larger than the data (at most
# max(_DIRECT_MIN_CELLS, 4 * n) cells). Otherwise (negative or sparse large labels)
# the labels are first mapped to 0..K-1 with torch.unique. Past _MATRIX_MAX_CELLS
# (512 MiB of int64) the K x K table is skipped and the per-class sums come from three
# bincounts, which is all precision/recall/F need.
_DIRECT_MIN_CELLS = 1 << 16
_MATRIX_MAX_CELLS = 1 << 26


@dataclass
class ClassCounts:
    classes: torch.Tensor  # (K,) int64 label values, sorted
    present: torch.Tensor  # (K,) bool: the label occurs in y_true or y_pred
    tp: torch.Tensor  # (K,) correct predictions per class
    pred_sum: torch.Tensor  # (K,) predictions per class (column sums)
    true_sum: torch.Tensor  # (K,) true samples per class (row sums)
    matrix: torch.Tensor | None  # (K, K) counts, row = true label; None past _MATRIX_MAX_CELLS


def as_label_tensor(labels, name, device):
    """``labels`` (a 1-D sequence) as int64; floats must hold whole numbers, which
    scikit-learn matches against integer labels (``labels=[0., 1.]``)."""
    t = to_tensor(labels, name).to(device)
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of labels, got shape {tuple(t.shape)}")
    if t.is_complex() or (t.is_floating_point() and not is_integral(t)):
        raise ValueError(
            f"{name}: expected integer class labels, got {t.dtype} values {t.tolist()}"
        )
    return whole_to_int64(t, name) if t.is_floating_point() else t.to(torch.int64)


def label_positions(y, labels):
    """The index in ``labels`` (distinct, in any order) of each value of y; -1 where
    the value is not one of them."""
    ordered, order = torch.sort(labels)
    at = torch.searchsorted(ordered, y.to(torch.int64)).clamp(max=labels.shape[0] - 1)
    return torch.where(ordered[at] == y, order[at], -1)


def _weights(sample_weight):
    """float64 weights, and whether the caller's weights were integers (sklearn then
    returns integer counts)."""
    if sample_weight is None:
        return None, True
    integral = not sample_weight.is_floating_point()
    return sample_weight.to(torch.float64).contiguous(), integral


def count_classes(y_true, y_pred, sample_weight=None, extra_labels=None):
    n = y_true.shape[0]
    device = y_true.device
    extra = (
        torch.empty(0, dtype=torch.int64, device=device)
        if extra_labels is None
        else extra_labels.to(device)
    )
    bounds = [torch.aminmax(t) for t in (y_true, y_pred, extra) if t.numel()]
    lo = min(int(b.min) for b in bounds) if bounds else 0
    hi = max(int(b.max) for b in bounds) if bounds else -1

    if lo >= 0 and (hi + 1) ** 2 <= max(_DIRECT_MIN_CELLS, 4 * n):
        k = hi + 1
        classes = torch.arange(k, device=device)
        ti, pi = y_true, y_pred
    else:
        classes, inverse = torch.unique(
            torch.cat([y_true.to(torch.int64), y_pred.to(torch.int64), extra]),
            sorted=True,
            return_inverse=True,
        )
        k = classes.shape[0]
        ti, pi = inverse[:n].contiguous(), inverse[n : 2 * n].contiguous()

    w, integral = _weights(sample_weight)
    if k * k <= _MATRIX_MAX_CELLS:
        dtype = torch.int64 if w is None else torch.float64
        matrix = torch.zeros((k, k), dtype=dtype, device=device)
        if n:
            _backend.confusion_matrix_add_(matrix, ti, pi, w)
        if w is not None and integral:
            matrix = matrix.round().to(torch.int64)
        tp = matrix.diagonal()
        true_sum = matrix.sum(dim=1)
        pred_sum = matrix.sum(dim=0)
    else:
        matrix = None
        ti, pi = ti.to(torch.int64), pi.to(torch.int64)
        hit = ti == pi
        tp = torch.bincount(ti[hit], None if w is None else w[hit], minlength=k)
        true_sum = torch.bincount(ti, w, minlength=k)
        pred_sum = torch.bincount(pi, w, minlength=k)

    if w is None:
        present = (true_sum > 0) | (pred_sum > 0)
    else:
        present = (torch.bincount(ti.to(torch.int64), minlength=k) > 0) | (
            torch.bincount(pi.to(torch.int64), minlength=k) > 0
        )
    return ClassCounts(classes, present, tp, pred_sum, true_sum, matrix)
