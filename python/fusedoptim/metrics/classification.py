"""Classification metrics with scikit-learn's names, arguments and results.

Inputs are torch tensors (CPU or CUDA), numpy arrays or lists. ``y_true`` holds
integer class labels; ``y_pred`` holds labels, scores of shape (N, C) (argmax), or
1-D probabilities of class 1 (threshold 0.5, see ``_inputs``). Scalars come back as
Python floats; arrays as numpy arrays for numpy/list inputs, torch tensors otherwise.
Differences from scikit-learn: labels must be integers (floats holding whole numbers
are accepted; strings are not), multilabel targets and ``average="samples"`` are not
supported, a 2-D float y_pred or a 1-D y_pred with fractional values is read as
scores / probabilities (scikit-learn refuses both), and ``confusion_matrix`` refuses
duplicate ``labels`` (scikit-learn silently leaves the first copy's row empty).
"""

from __future__ import annotations

import warnings

import torch

from fusedoptim.metrics import _scores
from fusedoptim.metrics._counting import as_label_tensor, count_classes, label_positions
from fusedoptim.metrics._inputs import (
    Output,
    check_flag,
    check_sample_weight,
    classification_inputs,
)


def _prepare(y_true, y_pred, sample_weight):
    t, p, w, _, as_numpy = classification_inputs(y_true, y_pred, sample_weight)
    if t.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty: at least one sample is required")
    check_sample_weight(w)
    return t, p, w, Output(as_numpy)


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """Counts C[i, j] of samples of class labels[i] predicted as labels[j]; int64, or
    float64 with float sample weights (or normalize: "true", "pred" or "all")."""
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f'normalize must be None, "true", "pred" or "all", got {normalize!r}')
    t, p, w, out = _prepare(y_true, y_pred, sample_weight)
    wanted = None
    if labels is not None:
        wanted = as_label_tensor(labels, "labels", t.device)
        if wanted.numel() == 0:
            raise ValueError("'labels' should contain at least one label.")
        if not bool(torch.isin(wanted, t).any()):
            raise ValueError("At least one label specified must be in y_true")
        if torch.unique(wanted).numel() != wanted.numel():
            raise ValueError(f"labels: contains duplicates: {wanted.tolist()}")
    if wanted is None:
        counts = count_classes(t, p, w)
        index = torch.nonzero(counts.present).reshape(-1)
    else:
        # Only pairs of two wanted labels are counted (sklearn drops the others), as
        # their positions in ``labels``: the table has len(labels)^2 cells however
        # many other classes the data holds.
        ti, pi = label_positions(t, wanted), label_positions(p, wanted)
        keep = (ti >= 0) & (pi >= 0)
        index = torch.arange(wanted.shape[0], device=t.device)
        w = None if w is None else w[keep]
        counts = count_classes(ti[keep], pi[keep], w, extra_labels=index)
    if counts.matrix is None:
        raise ValueError(f"{counts.classes.shape[0]} classes: the confusion matrix is too large")
    cm = counts.matrix[index][:, index]
    if cm.shape == (1, 1):
        warnings.warn(
            "A single label was found in 'y_true' and 'y_pred'. For the confusion matrix "
            "to have the correct shape, use the 'labels' parameter to pass all known labels.",
            UserWarning,
            stacklevel=2,
        )
    if normalize is not None:
        cm = cm.to(torch.float64)
        if normalize == "true":
            cm = cm / cm.sum(dim=1, keepdim=True)
        elif normalize == "pred":
            cm = cm / cm.sum(dim=0, keepdim=True)
        else:
            cm = cm / cm.sum()
        cm = torch.nan_to_num(cm, nan=0.0)
    return out.array(cm.contiguous())


def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None):
    """Fraction (or with normalize=False, the weighted number) of correct predictions."""
    check_flag(normalize, "normalize")
    t, p, w, _ = _prepare(y_true, y_pred, sample_weight)
    correct = (t.to(torch.int64) == p.to(torch.int64)).to(torch.float64)
    if w is None:
        return float(correct.mean() if normalize else correct.sum())
    w = w.to(torch.float64)
    total = (correct * w).sum()
    return float(total / w.sum() if normalize else total)


def precision_recall_fscore_support(
    y_true,
    y_pred,
    *,
    beta=1.0,
    labels=None,
    pos_label=1,
    average=None,
    warn_for=("precision", "recall", "f-score"),
    sample_weight=None,
    zero_division="warn",
):
    """Precision, recall, F-beta and support per class, or averaged (support None)."""
    _scores.check_average(average)
    _scores.zero_division_value(zero_division)
    _scores.check_beta(beta)
    # sklearn's types; a plain string would be searched by substring ("precision" in it).
    if not isinstance(warn_for, (list, tuple, set)):
        raise ValueError(f"warn_for must be a list, tuple or set of metric names, got {warn_for!r}")
    t, p, w, out = _prepare(y_true, y_pred, sample_weight)
    wanted = None if labels is None else as_label_tensor(labels, "labels", t.device)
    extra = wanted
    if average == "binary":
        pos_label = _scores.integer_pos_label(pos_label)
        extra = torch.tensor([pos_label], dtype=torch.int64, device=t.device)
    counts = count_classes(t, p, w, extra_labels=extra)
    index = _scores.select_labels(counts.classes, counts.present, wanted, pos_label, average)
    precision, recall, f_score, support = _scores.precision_recall_fscore(
        counts.tp[index],
        counts.pred_sum[index],
        counts.true_sum[index],
        beta=beta,
        average=average,
        warn_for=warn_for,
        zero_division=zero_division,
    )
    if average is not None:
        return float(precision), float(recall), float(f_score), None
    # sklearn's support is float64 when it sums weights (bincount with weights) and,
    # by accident of its code path, when no sample at all is predicted right.
    if w is not None or not bool(counts.tp.any()):
        support = support.to(torch.float64)
    return out.array(precision), out.array(recall), out.array(f_score), out.array(support)


def _one_score(
    which, y_true, y_pred, beta, labels, pos_label, average, sample_weight, zero_division, warn_name
):
    scores = precision_recall_fscore_support(
        y_true,
        y_pred,
        beta=beta,
        labels=labels,
        pos_label=pos_label,
        average=average,
        warn_for=(warn_name,),
        sample_weight=sample_weight,
        zero_division=zero_division,
    )
    return scores[which]


def precision_score(
    y_true,
    y_pred,
    *,
    labels=None,
    pos_label=1,
    average="binary",
    sample_weight=None,
    zero_division="warn",
):
    """tp / (tp + fp)."""
    return _one_score(
        0,
        y_true,
        y_pred,
        1.0,
        labels,
        pos_label,
        average,
        sample_weight,
        zero_division,
        "precision",
    )


def recall_score(
    y_true,
    y_pred,
    *,
    labels=None,
    pos_label=1,
    average="binary",
    sample_weight=None,
    zero_division="warn",
):
    """tp / (tp + fn)."""
    return _one_score(
        1, y_true, y_pred, 1.0, labels, pos_label, average, sample_weight, zero_division, "recall"
    )


def fbeta_score(
    y_true,
    y_pred,
    *,
    beta,
    labels=None,
    pos_label=1,
    average="binary",
    sample_weight=None,
    zero_division="warn",
):
    """(1 + beta^2) tp / ((1 + beta^2) tp + beta^2 fn + fp)."""
    return _one_score(
        2, y_true, y_pred, beta, labels, pos_label, average, sample_weight, zero_division, "f-score"
    )


def f1_score(
    y_true,
    y_pred,
    *,
    labels=None,
    pos_label=1,
    average="binary",
    sample_weight=None,
    zero_division="warn",
):
    """F-beta with beta = 1: 2 tp / (2 tp + fn + fp)."""
    return fbeta_score(
        y_true,
        y_pred,
        beta=1.0,
        labels=labels,
        pos_label=pos_label,
        average=average,
        sample_weight=sample_weight,
        zero_division=zero_division,
    )
