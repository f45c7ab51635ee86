"""Shared by the tests of fusedoptim.preprocessing: data with the features that matter
(NaN, constant and skewed columns), batch splits, and comparisons against scikit-learn
that record the worst deviation seen (printed at the end of the run by conftest.py)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

# Largest relative deviation from scikit-learn seen per quantity (see
# assert_close_recorded); conftest.py prints them after the run.
WORST_SEEN: dict[str, float] = {}


def data(rows, features, dtype=np.float64, *, seed=0, nan=0.0, offset=0.0, scale=1.0):
    """Normal data with per-feature means and spreads; a fraction ``nan`` of NaN, never in
    the first row (so no feature is NaN throughout)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=features) * 3 + offset
    spreads = rng.uniform(0.5, 4.0, size=features) * scale
    x = rng.normal(size=(rows, features)) * spreads + centers
    if nan:
        mask = rng.random((rows, features)) < nan
        mask[0] = False
        x[mask] = np.nan
    return x.astype(dtype)


def splits(rows, seed=0):
    """Ways to cut ``rows`` rows into consecutive batches: one batch, equal batches,
    uneven random batches, and a batch of one row at each end."""
    rng = np.random.default_rng(seed)
    out = [[rows]]
    if rows >= 4:
        out.append([rows // 4] * 3 + [rows - 3 * (rows // 4)])
        cuts = np.sort(rng.choice(np.arange(1, rows), size=min(6, rows - 1), replace=False))
        out.append(np.diff(np.concatenate([[0], cuts, [rows]])).tolist())
    if rows >= 2:
        out.append([1, rows - 1])
        out.append([rows - 1, 1])
    return out


def batches(x, sizes):
    start = 0
    for size in sizes:
        yield x[start : start + size]
        start += size


def sklearn_quiet(fn, *args, **kwargs):
    """Calls scikit-learn with its numpy RuntimeWarnings (all-NaN features) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def as_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close_recorded(name, ours, theirs, *, rtol, atol=0.0):
    """assert_allclose(ours, theirs, rtol, atol) with NaN in the same places, recording under
    ``name`` the relative deviation max |ours - theirs| / (|theirs| + atol / rtol): the
    tolerance holds while it stays below rtol."""
    ours, theirs = as_numpy(ours).astype(np.float64), as_numpy(theirs).astype(np.float64)
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{name}: NaN in other places"
    keep = ~np.isnan(theirs)
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), theirs.shape)
    limit = atol[keep] + rtol * np.abs(theirs[keep])
    excess = np.abs(ours[keep] - theirs[keep])
    if excess.size:
        ratio = float(np.max(np.divide(excess, limit, out=np.zeros_like(excess), where=limit > 0)))
        ratio = np.inf if np.any((limit == 0) & (excess > 0)) else ratio
        WORST_SEEN[name] = max(WORST_SEEN.get(name, 0.0), ratio * rtol)
    assert np.all(excess <= limit), f"{name}: {np.max(excess - limit):.3g} past the tolerance"


def ulp_distance(a, b):
    """Per-element distance in units in the last place of a's float dtype (NaN: 0 where
    both are NaN)."""
    a, b = as_numpy(a), as_numpy(b)
    int_type = np.int32 if a.dtype == np.float32 else np.int64
    ai, bi = a.view(int_type).astype(np.int64), b.view(int_type).astype(np.int64)
    # Map the sign-magnitude bit patterns onto a monotonic integer line.
    top = np.int64(1) << (8 * a.dtype.itemsize - 1)
    ai = np.where(ai < 0, -(ai + top), ai)
    bi = np.where(bi < 0, -(bi + top), bi)
    distance = np.abs(ai - bi)
    return np.where(np.isnan(a) & np.isnan(b), 0, distance)
