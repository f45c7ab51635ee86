"""Regression functions against scikit-learn. Tolerance rtol 1e-10: float64 throughout,
differing only in summation order and in the one-pass centred moments used for R^2.
float32 inputs are computed in float64 (sklearn stays in float32), so they are
compared with sklearn on the float64 values."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

import fusedoptim.metrics as fm

RTOL = 1e-10
FUNCS = ["mean_squared_error", "mean_absolute_error", "r2_score"]


def sk(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def case(seed, shape, weighted):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=shape) * 3 + 1
    p = t + rng.normal(size=shape)
    w = rng.random(shape[0]) if weighted else None
    return t, p, w


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("shape", [(1_001,), (333, 4)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["numpy", "torch", "float32"])
def test_against_sklearn(name, shape, weighted, kind):
    t, p, w = case(0, shape, weighted)
    if kind == "float32":
        t, p = t.astype(np.float32), p.astype(np.float32)
    options = ["raw_values", "uniform_average"]
    if name == "r2_score":
        options.append("variance_weighted")
    if len(shape) == 2:
        options.append(np.arange(1.0, shape[1] + 1))
    for multioutput in options:
        args = (t, p) if kind == "numpy" else (torch.from_numpy(t), torch.from_numpy(p))
        ours = getattr(fm, name)(*args, sample_weight=w, multioutput=multioutput)
        # float32 inputs: we compute in float64, sklearn in the input dtype; compare with
        # sklearn on the same values in float64.
        ref = getattr(skm, name)(
            t.astype(np.float64), p.astype(np.float64), sample_weight=w, multioutput=multioutput
        )
        if isinstance(multioutput, str) and multioutput == "raw_values":
            assert isinstance(ours, np.ndarray if kind == "numpy" else torch.Tensor)
            ours = np.asarray(ours)
        else:
            assert isinstance(ours, float)
        np.testing.assert_allclose(ours, ref, rtol=RTOL)


def test_integer_inputs():
    t = [3, -1, 2, 7]
    p = [2, 0, 2, 8]
    for name in FUNCS:
        assert getattr(fm, name)(t, p) == pytest.approx(getattr(skm, name)(t, p), rel=RTOL)


@pytest.mark.parametrize("force_finite", [True, False])
def test_r2_constant_target(force_finite):
    t = np.array([[2.0, 1.0], [2.0, 2.0], [2.0, 3.0]])
    for p in (t.copy(), t + np.array([[0.5, 0.0]])):
        ours = fm.r2_score(t, p, multioutput="raw_values", force_finite=force_finite)
        ref = sk(skm.r2_score, t, p, multioutput="raw_values", force_finite=force_finite)
        np.testing.assert_allclose(ours, ref, rtol=RTOL)
    ours = fm.r2_score(t, t, multioutput="variance_weighted", force_finite=force_finite)
    ref = sk(skm.r2_score, t, t, multioutput="variance_weighted", force_finite=force_finite)
    np.testing.assert_allclose(ours, ref, rtol=RTOL)  # NaN == NaN here


def test_r2_one_sample_warns_nan_like_sklearn():
    with pytest.warns(fm.UndefinedMetricWarning, match="less than two samples"):
        assert np.isnan(fm.r2_score([1.0], [2.0]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fm.mean_squared_error([1.0, 2.0], [1.0]), "different shapes"),
        (lambda: fm.mean_squared_error(np.ones((2, 2)), np.ones((2, 3))), "different shapes"),
        (lambda: fm.mean_squared_error(np.ones((2, 2, 2)), np.ones((2, 2, 2))), "shape"),
        (lambda: fm.mean_squared_error([1.0], [1.0], sample_weight=[1.0, 2.0]), "sample_weight"),
        (lambda: fm.mean_squared_error([], []), "empty"),
        (
            lambda: fm.mean_squared_error([1.0], [1.0], multioutput="variance_weighted"),
            "multioutput",
        ),
        (lambda: fm.r2_score(np.ones((3, 2)), np.ones((3, 2)), multioutput=[1.0]), "weights"),
        (lambda: fm.mean_absolute_error(["a"], ["b"]), "expected numbers"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
