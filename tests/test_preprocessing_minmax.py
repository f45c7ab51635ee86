"""fusedoptim.preprocessing.MinMaxScaler against scikit-learn's MinMaxScaler.

min and max are exact whatever the split into batches, and the attributes are computed
from them in the data's dtype with scikit-learn's operations (see [note: minmax dtype] in
_minmax.py), so attributes and transforms are compared for equality: tolerance 0, measured
0 (float16, float32 and float64, across every split below).
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.preprocessing as skp
import torch

from fusedoptim.preprocessing import MinMaxScaler

from scaler_reference import as_numpy, batches, data, sklearn_quiet, splits

ATTRIBUTES = ("data_min_", "data_max_", "data_range_", "scale_", "min_")


def fit_batches(x, sizes, **kwargs):
    ours = MinMaxScaler(**kwargs)
    for part in batches(x, sizes):
        ours.partial_fit(part)
    return ours


def assert_equal_to_sklearn(ours, sk, inputs):
    assert ours.n_samples_seen_ == sk.n_samples_seen_
    assert type(ours.n_samples_seen_) is int
    for name in ATTRIBUTES:
        got, expected = as_numpy(getattr(ours, name)), getattr(sk, name)
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    for x in inputs:
        got, expected = ours.transform(x), sklearn_quiet(sk.transform, x)
        assert as_numpy(got).dtype == expected.dtype
        np.testing.assert_array_equal(as_numpy(got), expected)
        np.testing.assert_array_equal(
            as_numpy(ours.inverse_transform(x)), sklearn_quiet(sk.inverse_transform, x)
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("features", [1, 3, 64, 130])
@pytest.mark.parametrize("rows", [1, 7, 1023, 65537])
def test_matches_sklearn_over_batch_splits(rows, features, dtype):
    x = data(rows, features, dtype, seed=rows + features, nan=0.05 if rows > 7 else 0.0)
    held_out = (data(33, features, dtype, seed=1) * 2).astype(dtype)  # outside the fit range
    sk = skp.MinMaxScaler().fit(x)
    for sizes in splits(rows, seed=features):
        assert_equal_to_sklearn(fit_batches(x, sizes), sk, [x, held_out])


@pytest.mark.parametrize("feature_range", [(0, 1), (-1, 1), (0.1, 0.9), (-3.7, 1e-3)])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_feature_range_and_clip(feature_range, clip, dtype):
    x = data(2000, 5, dtype, seed=3, nan=0.1)
    held_out = (data(100, 5, dtype, seed=4) * 3).astype(dtype)
    sk = skp.MinMaxScaler(feature_range=feature_range, clip=clip).fit(x)
    ours = fit_batches(x, [700, 1, 1299], feature_range=feature_range, clip=clip)
    assert_equal_to_sklearn(ours, sk, [x, held_out])
    if clip:
        out = ours.transform(held_out)
        kept = out[~np.isnan(out)]
        assert kept.min() >= dtype(feature_range[0]) and kept.max() <= dtype(feature_range[1])


def test_constant_features_and_nan():
    x = data(500, 5, seed=5, nan=0.2)
    x[:, 0] = 7.5
    x[:, 1] = 0.0
    x[1::2, 2] = np.nan  # half missing
    sk = skp.MinMaxScaler().fit(x)
    ours = fit_batches(x, [250, 250])
    assert_equal_to_sklearn(ours, sk, [x])
    out = ours.transform(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))


def test_all_nan_feature():
    x = data(20, 3, seed=6)
    x[:, 2] = np.nan
    with pytest.warns(RuntimeWarning, match="feature.* 2 held only NaN"):
        ours = MinMaxScaler().fit(x)
    sk = sklearn_quiet(skp.MinMaxScaler().fit, x)
    assert_equal_to_sklearn(ours, sk, [x])


def test_feature_nan_in_the_first_batches_takes_the_later_batches_range():
    """As a one-shot fit on all the rows (scikit-learn's partial_fit would keep
    the feature at NaN from then on: documented in the README)."""
    x = data(50, 3, seed=9)
    x[:7, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="feature.* 1 held only NaN"):
        ours = MinMaxScaler().partial_fit(x[:7])
    ours.partial_fit(x[7:30]).partial_fit(x[30:])
    assert_equal_to_sklearn(ours, skp.MinMaxScaler().fit(x), [x])


@pytest.mark.parametrize("fit_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transform_dtype", [np.float32, np.float64])
def test_transform_of_another_dtype(fit_dtype, transform_dtype):
    # A float32 X with float64 statistics is computed in double and rounded to float
    # after each operation, as numpy's `X *= scale_` does (see csrc/ops/scaler.h).
    x = data(999, 4, fit_dtype, seed=7)
    other = data(999, 4, transform_dtype, seed=8)
    sk = skp.MinMaxScaler(clip=True).fit(x)
    ours = MinMaxScaler(clip=True).fit(x)
    assert_equal_to_sklearn(ours, sk, [other])


def test_mixed_dtype_batches_promote():
    x = data(100, 3, seed=9)
    sk = skp.MinMaxScaler().partial_fit(x[:50].astype(np.float32)).partial_fit(x[50:])
    ours = MinMaxScaler().partial_fit(x[:50].astype(np.float32)).partial_fit(x[50:])
    assert_equal_to_sklearn(ours, sk, [x])


def test_torch_in_torch_out():
    x = data(500, 4, np.float32, seed=10, nan=0.05)
    t = torch.from_numpy(x)
    ours = MinMaxScaler(feature_range=(-1, 1))
    for part in t.split(100):
        ours.partial_fit(part)
    sk = skp.MinMaxScaler(feature_range=(-1, 1)).fit(x)
    for name in ATTRIBUTES:
        value = getattr(ours, name)
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float32, name
        np.testing.assert_array_equal(value.numpy(), getattr(sk, name))
    assert ours.n_samples_seen_ == 500
    out = ours.transform(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), sk.transform(x))
    bf16 = MinMaxScaler().fit(t.to(torch.bfloat16))
    assert bf16.scale_.dtype == torch.bfloat16
    assert bf16.transform(t.to(torch.bfloat16)).dtype == torch.bfloat16


def test_copy_false_and_out():
    x = data(300, 5, seed=11)
    expected = skp.MinMaxScaler().fit(x).transform(x)
    ours = MinMaxScaler(copy=False).fit(x)
    out = np.empty_like(x)
    assert ours.transform(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert ours.transform(x) is x
    np.testing.assert_array_equal(x, expected)


def test_fit_transform():
    x = data(256, 6, np.float32, seed=12)
    np.testing.assert_array_equal(
        MinMaxScaler(feature_range=(2, 5)).fit_transform(x),
        skp.MinMaxScaler(feature_range=(2, 5)).fit_transform(x),
    )


def test_repr():
    assert repr(MinMaxScaler()) == "MinMaxScaler()"
    assert (
        repr(MinMaxScaler((-1, 1), clip=True)) == "MinMaxScaler(feature_range=(-1, 1), clip=True)"
    )
