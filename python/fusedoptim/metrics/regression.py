"""Regression metrics with scikit-learn's names, arguments and results.

Every function goes through the same running statistics the stateful metrics keep
(``batch_moments`` / ``merge_moments``), all in float64: the weight total, the sums
of squared and absolute errors, and the mean and centred sum of squares of y_true.

[note: centred moments] R^2 needs sum w (y - mean)^2. Summing w*y and w*y^2 and
subtracting loses every digit when |mean| >> std (y around 1e6 with unit noise); the
running mean and centred sum (Welford, merged across batches with Chan's formula)
keep full precision and still merge exactly across batches and processes.
"""

from __future__ import annotations

import warnings

import torch

from fusedoptim.metrics._inputs import (
    Output,
    any_torch,
    check_flag,
    check_sample_weight,
    same_device,
    to_tensor,
)
from fusedoptim.metrics._scores import UndefinedMetricWarning

MOMENT_NAMES = ("count", "weight", "sq_err", "abs_err", "mean", "m2")


def regression_inputs(
    y_true, y_pred, sample_weight=None, num_outputs=None, names=("y_true", "y_pred")
):
    """float64 tensors of shape (N, K), weights (N,) or None, and whether to return numpy.
    ``names``: the caller's names of the first two arguments, for error messages."""
    as_numpy = not any_torch(y_true, y_pred, sample_weight)
    t = to_tensor(y_true, names[0])
    p = to_tensor(y_pred, names[1])
    w = None if sample_weight is None else to_tensor(sample_weight, "sample_weight")
    t, p, w = same_device([t, p, w], [*names, "sample_weight"])
    t, p = (x.to(torch.float64) for x in (t, p))
    for x, name in ((t, names[0]), (p, names[1])):
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: expected shape (N,) or (N, outputs), got {tuple(x.shape)}")
    # (N,) is one output; an empty (0,) (np.asarray([]) of a [] batch) takes the
    # expected width, so that the streaming update([], []) adds nothing.
    width = num_outputs if t.numel() == p.numel() == 0 and num_outputs else 1
    t, p = (x if x.ndim == 2 else x.reshape(x.shape[0], width) for x in (t, p))
    if t.shape != p.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} have different shapes: "
            f"{tuple(t.shape)} and {tuple(p.shape)}"
        )
    if num_outputs is not None and t.shape[1] != num_outputs:
        raise ValueError(f"expected {num_outputs} output(s) per sample, got {t.shape[1]}")
    if w is not None:
        if w.shape != (t.shape[0],):
            raise ValueError(f"sample_weight: expected shape ({t.shape[0]},), got {tuple(w.shape)}")
        w = w.to(torch.float64)
    return t, p, w, as_numpy


def zero_moments(num_outputs, device=None):
    scalar = torch.zeros((), dtype=torch.float64, device=device)
    vector = torch.zeros(num_outputs, dtype=torch.float64, device=device)
    return {
        "count": scalar.clone(),
        "weight": scalar.clone(),
        "sq_err": vector.clone(),
        "abs_err": vector.clone(),
        "mean": vector.clone(),
        "m2": vector.clone(),
    }


def batch_moments(t, p, w):
    """The running statistics of one batch ((N, K) float64 tensors), without host syncs."""
    # torch.full, not torch.tensor: a host -> device copy would wait for the GPU.
    n = torch.full((), float(t.shape[0]), dtype=torch.float64, device=t.device)
    err = t - p
    if w is None:
        weight = n
        sq_err = (err * err).sum(dim=0)
        abs_err = err.abs().sum(dim=0)
        mean = t.mean(dim=0) if t.shape[0] else torch.zeros_like(sq_err)
        m2 = ((t - mean) ** 2).sum(dim=0)
    else:
        wc = w[:, None]
        weight = w.sum()
        sq_err = (wc * err * err).sum(dim=0)
        abs_err = (wc * err.abs()).sum(dim=0)
        mean = (wc * t).sum(dim=0) / torch.where(weight != 0, weight, 1.0)
        m2 = (wc * (t - mean) ** 2).sum(dim=0)
    return {
        "count": n,
        "weight": weight,
        "sq_err": sq_err,
        "abs_err": abs_err,
        "mean": mean,
        "m2": m2,
    }


def merge_moments(a, b):
    """Statistics of the union of two sample sets (Chan et al.'s pairwise update)."""
    weight = a["weight"] + b["weight"]
    safe = torch.where(weight != 0, weight, 1.0)
    delta = b["mean"] - a["mean"]
    return {
        "count": a["count"] + b["count"],
        "weight": weight,
        "sq_err": a["sq_err"] + b["sq_err"],
        "abs_err": a["abs_err"] + b["abs_err"],
        "mean": a["mean"] + delta * (b["weight"] / safe),
        "m2": a["m2"] + b["m2"] + delta * delta * (a["weight"] * b["weight"] / safe),
    }


def check_multioutput(multioutput, num_outputs, allowed):
    if isinstance(multioutput, str):
        if multioutput not in allowed:
            raise ValueError(
                f"multioutput must be one of {allowed} or an array of weights, got {multioutput!r}"
            )
        return multioutput
    weights = to_tensor(multioutput, "multioutput").to(torch.float64).reshape(-1)
    # As scikit-learn: weights average several outputs, and must not sum to zero
    # (sklearn raises ZeroDivisionError there; a ValueError names the argument).
    if num_outputs == 1:
        raise ValueError("multioutput: custom weights are useful only with several outputs")
    if weights.shape[0] != num_outputs:
        raise ValueError(f"multioutput: {weights.shape[0]} weights for {num_outputs} output(s)")
    if not bool(torch.isfinite(weights).all()) or float(weights.sum()) == 0:
        raise ValueError(
            f"multioutput: weights must be finite and not sum to 0, got {weights.tolist()}"
        )
    return weights


def _average_outputs(values, multioutput, variance=None):
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return values
        if multioutput == "variance_weighted" and bool((variance != 0).any()):
            return (values * variance).sum() / variance.sum()
        return values.mean()
    weights = multioutput.to(values.device)
    return (values * weights).sum() / weights.sum()


def mse_from(m, multioutput):
    return _average_outputs(m["sq_err"] / m["weight"], multioutput)


def mae_from(m, multioutput):
    return _average_outputs(m["abs_err"] / m["weight"], multioutput)


def r2_from(m, multioutput, force_finite):
    """sklearn's r2_score from the statistics; NaN (with a warning) under two samples."""
    if float(m["count"]) < 2:
        warnings.warn(
            "R^2 score is not well-defined with less than two samples.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
        return torch.tensor(float("nan"), dtype=torch.float64)
    num, den = m["sq_err"], m["m2"]
    if force_finite:
        safe = torch.where(den != 0, den, 1.0)
        scores = torch.where(num == 0, 1.0, torch.where(den != 0, 1 - num / safe, 0.0)).to(
            torch.float64
        )
    else:
        scores = 1 - num / den
    return _average_outputs(scores, multioutput, variance=den)


def _run(y_true, y_pred, sample_weight, multioutput, allowed):
    t, p, w, as_numpy = regression_inputs(y_true, y_pred, sample_weight)
    if t.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty: at least one sample is required")
    # As scikit-learn; the streaming metrics skip these checks (they would wait for
    # a GPU), so there a NaN input gives a NaN result.
    for x, name in ((t, "y_true"), (p, "y_pred")):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or infinity")
    check_sample_weight(w)
    multioutput = check_multioutput(multioutput, t.shape[1], allowed)
    return batch_moments(t, p, w), multioutput, Output(as_numpy)


def _result(value, out):
    return float(value) if value.ndim == 0 else out.array(value)


_ERROR_OUTPUTS = ("raw_values", "uniform_average")
_R2_OUTPUTS = ("raw_values", "uniform_average", "variance_weighted")


def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Weighted mean of (y_true - y_pred)^2 per output, then averaged over outputs."""
    m, multioutput, out = _run(y_true, y_pred, sample_weight, multioutput, _ERROR_OUTPUTS)
    return _result(mse_from(m, multioutput), out)


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Weighted mean of |y_true - y_pred| per output, then averaged over outputs."""
    m, multioutput, out = _run(y_true, y_pred, sample_weight, multioutput, _ERROR_OUTPUTS)
    return _result(mae_from(m, multioutput), out)


def r2_score(
    y_true, y_pred, *, sample_weight=None, multioutput="uniform_average", force_finite=True
):
    """1 - sum w (y - y_pred)^2 / sum w (y - mean_w(y))^2, per output, then averaged."""
    check_flag(force_finite, "force_finite")
    m, multioutput, out = _run(y_true, y_pred, sample_weight, multioutput, _R2_OUTPUTS)
    return _result(r2_from(m, multioutput, force_finite), out)
