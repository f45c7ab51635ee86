"""Precision, recall and F-beta from per-class counts, with scikit-learn's rules for
zero division, label selection and averaging. Shared by the functions and the
stateful metrics, so both give the same numbers from the same counts."""

from __future__ import annotations

import math
import numbers
import warnings

import torch

AVERAGES = (None, "micro", "macro", "weighted", "binary")


class UndefinedMetricWarning(UserWarning):
    """A score divided by zero and was set by ``zero_division="warn"`` (to 0.0)."""


def check_average(average):
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")


def integer_pos_label(pos_label):
    """pos_label as an int: scikit-learn accepts any real number (True, 1.0) that
    equals a label; labels here are integers, so it must be a whole number."""
    if isinstance(pos_label, numbers.Real) and float(pos_label).is_integer():
        return int(pos_label)
    raise ValueError(f"pos_label must be an integer label, got {pos_label!r}")


def zero_division_value(zero_division):
    """The score of a 0/0 division, by scikit-learn 1.9.1's rules: "warn" (0.0 and a
    warning), or a real number (bools too) equal to 0 or 1, or NaN. sklearn keeps the
    value of Python ints and floats only and reads the others (np.int64(1),
    np.float32(0), Fraction(1)) as NaN; so do we, to give its results."""
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0
    elif isinstance(zero_division, numbers.Real):
        if zero_division in (0, 1):
            return float(zero_division) if isinstance(zero_division, (int, float)) else math.nan
        if not isinstance(zero_division, numbers.Integral) and math.isnan(zero_division):
            return math.nan
    raise ValueError(f'zero_division must be "warn", 0, 1 or nan, got {zero_division!r}')


def _warn(average, modifier, metric, size):
    where = "due to" if size == 1 else "in labels with"
    warnings.warn(
        f"{metric.capitalize()} is ill-defined and being set to 0.0 {where} no {modifier} "
        "samples. Use `zero_division` parameter to control this behavior.",
        UndefinedMetricWarning,
        stacklevel=4,
    )


def _divide(num, den, metric, modifier, average, warn_for, zero_division):
    num = num.to(torch.float64)
    den = den.to(torch.float64)
    zero = den == 0
    result = num / torch.where(zero, torch.ones_like(den), den)
    if not bool(zero.any()):
        return result
    result = torch.where(zero, torch.full_like(result, zero_division_value(zero_division)), result)
    if isinstance(zero_division, str) and metric in warn_for:  # "warn", the only string
        _warn(average, modifier, metric, result.shape[0])
    return result


def nanaverage(a, weights=None):
    """sklearn's _nanaverage: NaNs are dropped; all-zero weights fall back to a plain mean."""
    if a.shape[0] == 0:
        return torch.tensor(math.nan, dtype=torch.float64, device=a.device)
    keep = ~torch.isnan(a)
    if not bool(keep.any()):
        return torch.tensor(math.nan, dtype=torch.float64, device=a.device)
    a = a[keep]
    if weights is not None:
        weights = weights.to(torch.float64)[keep]
        total = weights.sum()
        if bool(total != 0):
            return (a * weights).sum() / total
    return a.mean()


def select_labels(classes, present, labels, pos_label, average):
    """Indices into ``classes`` of the labels to score, following sklearn's
    _check_set_wise_labels: 'binary' scores pos_label alone (at most two classes may
    occur), otherwise ``labels`` in the given order, or every class that occurs."""
    if average == "binary":
        occurring = classes[present].tolist()
        if len(occurring) > 2:
            raise ValueError(
                "Target is multiclass but average='binary'. Please choose another average "
                "setting, one of [None, 'micro', 'macro', 'weighted']."
            )
        if pos_label not in occurring and len(occurring) >= 2:
            raise ValueError(
                f"pos_label={pos_label} is not a valid label. It should be one of {occurring}"
            )
        labels = torch.tensor([pos_label], dtype=torch.int64, device=classes.device)
    elif pos_label not in (None, 1):
        warnings.warn(
            f"Note that pos_label (set to {pos_label!r}) is ignored when average != 'binary' "
            f"(got {average!r}). You may use labels=[pos_label] to specify a single positive "
            "class.",
            UserWarning,
            stacklevel=3,
        )
    if labels is None:
        return torch.nonzero(present).reshape(-1)
    k = classes.shape[0]
    index = torch.searchsorted(classes, labels)
    found = index < k
    if k:
        found &= classes[index.clamp(max=k - 1)] == labels
    if not bool(found.all()):
        raise ValueError(
            f"labels {labels[~found].tolist()} are not classes in [0, {classes.shape[0]})"
        )
    return index


def precision_recall_fscore(tp, pred_sum, true_sum, *, beta, average, warn_for, zero_division):
    """Per-class sums (already selected) -> (precision, recall, f, support) as sklearn
    computes them; scores are 0-d float64 tensors when averaged, else (K,) tensors."""
    if average == "micro":
        tp, pred_sum, true_sum = (x.sum().reshape(1) for x in (tp, pred_sum, true_sum))
    precision = _divide(tp, pred_sum, "precision", "predicted", average, warn_for, zero_division)
    recall = _divide(tp, true_sum, "recall", "true", average, warn_for, zero_division)
    if math.isinf(beta):
        f_score = recall
    elif beta == 0:
        f_score = precision
    else:
        # beta**2 and 1 + beta**2 in beta's own type, as sklearn computes them: an
        # np.float32 beta rounds there, before the float64 sums.
        beta2 = beta**2
        tp64 = tp.to(torch.float64)
        denom = float(beta2) * true_sum.to(torch.float64) + pred_sum.to(torch.float64)
        f_score = _divide(
            float(1 + beta2) * tp64,
            denom,
            "f-score",
            "true nor predicted",
            average,
            warn_for,
            zero_division,
        )
    if average is None:
        return precision, recall, f_score, true_sum
    weights = true_sum if average == "weighted" else None
    return (
        nanaverage(precision, weights),
        nanaverage(recall, weights),
        nanaverage(f_score, weights),
        None,
    )


def check_beta(beta):
    """Any real number >= 0 (inf too), as sklearn: np.float32, np.int64 and bools."""
    if not isinstance(beta, numbers.Real) or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
