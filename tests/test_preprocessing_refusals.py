"""Bad input to the scalers gets a clear ValueError/TypeError naming the argument, and a
refused call changes nothing: not the statistics (compared bit for bit through
state_dict), not X."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch

from fusedoptim.preprocessing import MinMaxScaler, NotFittedError, StandardScaler

from scaler_reference import data

SCALERS = [StandardScaler, MinMaxScaler]


def snapshot(scaler):
    return {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in scaler.state_dict().items()
    }


def assert_unchanged(scaler, before):
    after = scaler.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, after[key]), key  # bit for bit (no NaN in these)
        else:
            assert value == after[key], key


def fitted(cls, **kwargs):
    return cls(**kwargs).partial_fit(data(50, 3, seed=1))


BAD_X = [
    (np.arange(5.0), ValueError, "X: expected a 2-D array.*got 1 dimension.*reshape"),
    (np.float64(3.0), ValueError, "X: expected a 2-D array.*got 0 dimension"),
    (np.zeros((2, 3, 4)), ValueError, "X: expected a 2-D array.*got 3 dimension"),
    (np.zeros((0, 3)), ValueError, r"X: found an array of shape \(0, 3\)"),
    (np.zeros((4, 0)), ValueError, r"X: found an array of shape \(4, 0\)"),
    (np.ones((4, 3), dtype=complex), ValueError, "X: complex values are not supported"),
    (torch.ones(4, 3, dtype=torch.complex64), ValueError, "X: complex values"),
    (np.array([["a", "b", "c"]] * 4), ValueError, "X: expected numbers, got an array of dtype"),
    (np.array([[1.0, "a", 2.0]], dtype=object), ValueError, "X: could not convert the values"),
    ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, "X: could not read the input"),
    (scipy.sparse.csr_matrix(np.ones((4, 3))), TypeError, "X: sparse input is not supported"),
    (torch.ones(4, 3).to_sparse(), TypeError, "X: sparse input is not supported"),
]


@pytest.mark.parametrize("cls", SCALERS)
@pytest.mark.parametrize("bad, error, match", BAD_X)
def test_bad_x_is_refused_and_changes_nothing(cls, bad, error, match):
    scaler = fitted(cls)
    before = snapshot(scaler)
    for call in (scaler.partial_fit, scaler.fit, scaler.transform, scaler.inverse_transform):
        with pytest.raises(error, match=match):
            call(bad)
        assert_unchanged(scaler, before)
    with pytest.raises(error, match=match):
        cls().fit(bad)


@pytest.mark.parametrize("cls", SCALERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", [(0, 0), (37, 2), (4999, 1)])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf_is_refused_by_every_call_and_changes_nothing(cls, dtype, where, value):
    scaler = fitted(cls)
    before = snapshot(scaler)
    x = data(5000, 3, dtype, seed=2, nan=0.01)
    x[where] = value
    keep = x.copy()
    message = rf"X contains infinity \(row {where[0]}, feature {where[1]}\)"
    with pytest.raises(ValueError, match=message):
        scaler.partial_fit(x)
    assert_unchanged(scaler, before)
    with pytest.raises(ValueError, match=message):
        scaler.fit(x)  # a refused fit keeps the earlier statistics
    assert_unchanged(scaler, before)
    for copy in (True, False):
        with pytest.raises(ValueError, match=message):
            cls(copy=copy).fit(np.ones((1, 3))).transform(x)
        np.testing.assert_array_equal(x, keep)  # in place too: checked before writing
    t = torch.from_numpy(x)
    with pytest.raises(ValueError, match=message):
        scaler.transform(t.T.contiguous().T, out=None)  # a strided view: the torch path
    with pytest.raises(ValueError, match=message):
        StandardScaler(copy=False).fit(np.ones((2, 3))).transform(np.asfortranarray(x))
    np.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize("cls", SCALERS)
def test_wrong_feature_count(cls):
    scaler = fitted(cls)
    before = snapshot(scaler)
    message = f"X has 4 features, but {cls.__name__} is expecting 3 features as input"
    for call in (scaler.partial_fit, scaler.transform, scaler.inverse_transform):
        with pytest.raises(ValueError, match=message):
            call(np.ones((5, 4)))
    assert_unchanged(scaler, before)
    scaler.fit(np.ones((5, 4)))  # fit starts over with any feature count
    assert scaler.n_features_in_ == 4


BAD_WEIGHTS = [
    (np.ones(49), r"sample_weight: expected shape \(50,\)"),
    (np.ones((50, 1)), r"sample_weight: expected shape \(50,\)"),
    (np.full(50, np.nan), "sample_weight: contains NaN or infinity"),
    (np.r_[np.ones(49), np.inf], "sample_weight: contains NaN or infinity"),
    (np.zeros(50), "sample_weight: must contain at least one non-zero weight"),
    (np.ones(50, dtype=complex), "sample_weight: complex values"),
    (np.array(["1"] * 50), "sample_weight: expected numbers"),
]


@pytest.mark.parametrize("weights, match", BAD_WEIGHTS)
def test_bad_sample_weight(weights, match):
    scaler = fitted(StandardScaler)
    before = snapshot(scaler)
    with pytest.raises(ValueError, match=match):
        scaler.partial_fit(data(50, 3, seed=3), sample_weight=weights)
    assert_unchanged(scaler, before)


def test_sample_weights_below_float32_are_zero_for_float32_data():
    # scikit-learn rounds the weights to X's dtype first: 1e-50 is 0 in float32.
    with pytest.raises(ValueError, match="at least one non-zero weight"):
        StandardScaler().fit(data(10, 2, np.float32), sample_weight=np.full(10, 1e-50))
    StandardScaler().fit(data(10, 2, np.float64), sample_weight=np.full(10, 1e-50))


@pytest.mark.parametrize("cls", SCALERS)
def test_not_fitted(cls):
    scaler = cls()
    for call in (scaler.transform, scaler.inverse_transform):
        with pytest.raises(NotFittedError, match=f"This {cls.__name__} instance is not fitted"):
            call(np.ones((2, 2)))
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert not hasattr(scaler, "n_features_in_")
    assert not hasattr(scaler, "scale_")
    assert not hasattr(scaler, "n_samples_seen_")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"with_mean": 1}, "with_mean must be True or False"),
        ({"with_std": None}, "with_std must be True or False"),
        ({"copy": "no"}, "copy must be True or False"),
    ],
)
def test_bad_standard_scaler_arguments(kwargs, match):
    scaler = StandardScaler(**kwargs)  # checked at fit, as scikit-learn does
    with pytest.raises(ValueError, match=match):
        scaler.fit(np.ones((3, 2)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"feature_range": [0, 1]}, r"feature_range must be a tuple \(min, max\)"),
        ({"feature_range": (0, 1, 2)}, "feature_range must be a tuple"),
        ({"feature_range": (1, 0)}, "Minimum of desired feature range must be smaller"),
        ({"feature_range": (1, 1)}, "Minimum of desired feature range must be smaller"),
        ({"feature_range": (0, np.inf)}, "feature_range must hold two finite numbers"),
        ({"feature_range": ("0", 1)}, "feature_range must hold two finite numbers"),
        ({"clip": 1}, "clip must be True or False"),
    ],
)
def test_bad_minmax_scaler_arguments(kwargs, match):
    scaler = fitted(MinMaxScaler)
    before = snapshot(scaler)
    scaler.set = None
    for name, value in kwargs.items():
        setattr(scaler, name, value)
    with pytest.raises(ValueError, match=match):
        scaler.partial_fit(np.ones((3, 3)))
    assert_unchanged(scaler, before)


def test_bad_out():
    x = data(10, 3, np.float32, seed=4)
    scaler = StandardScaler().fit(x)
    t = torch.from_numpy(x.copy())
    base = torch.ones(40)
    cases = [
        (x, torch.empty(10, 3), TypeError, "out: X is a numpy array or list"),
        (t, np.empty((10, 3), np.float32), TypeError, "out: X is a torch tensor"),
        (x, np.empty((10, 4), np.float32), ValueError, r"out: expected shape \(10, 3\)"),
        (x, np.empty((10, 3), np.float64), ValueError, "out: expected dtype float32"),
        (t, torch.empty(10, 3, dtype=torch.float64), ValueError, "out: expected dtype"),
        (base[:30].view(10, 3), base[3:33].view(10, 3), ValueError, "out: overlaps X without"),
        (t, torch.empty(10, 3, requires_grad=True), ValueError, "out: requires grad"),
    ]
    read_only = np.empty((10, 3), np.float32)
    read_only.setflags(write=False)
    cases.append((x, read_only, ValueError, "out: is read-only"))
    for X, out, error, match in cases:
        with pytest.raises(error, match=match):
            scaler.transform(X, out=out)


def test_in_place_on_a_tensor_that_requires_grad_is_refused():
    t = torch.randn(10, 3, requires_grad=True)
    scaler = StandardScaler().fit(t)
    with pytest.raises(ValueError, match="X: requires grad"):
        scaler.transform(t, copy=False)
    out = scaler.transform(t)  # copy=True reads it
    assert not out.requires_grad


def test_partial_fit_after_a_fit_without_moments():
    scaler = StandardScaler(with_mean=False, with_std=False).fit(np.ones((4, 2)))
    scaler.with_mean = True
    before = snapshot(scaler)
    with pytest.raises(ValueError, match="hold no mean or variance; call fit again"):
        scaler.partial_fit(np.ones((4, 2)))
    assert_unchanged(scaler, before)
