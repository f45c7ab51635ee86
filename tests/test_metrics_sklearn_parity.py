"""fusedoptim.metrics against scikit-learn, call by call: values, return types, warnings
and refusals, on lists, numpy arrays and CPU torch tensors.

Tolerances. Counts (confusion matrices, support, accuracy with normalize=False) and
per-class scores are the same float64 division of the same integer or float64 sums:
exact. Averages over classes, weighted sums and regression errors reduce in another
order (torch vs numpy; Welford/Chan moments for R^2): rtol 1e-12, atol 1e-14.

Where sklearn raises, we raise ValueError or TypeError (sklearn's InvalidParameterError
is a ValueError; it raises ZeroDivisionError for weights summing to zero, we raise
ValueError naming the argument). The deliberate differences are listed and tested in
``test_documented_differences``.
"""

import warnings
from fractions import Fraction

import hypothesis.strategies as st
import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings

import fusedoptim.metrics as fm

RTOL, ATOL = 1e-12, 1e-14
KINDS = ["list", "numpy", "torch"]


def convert(x, kind):
    if x is None or kind == "numpy":
        return x
    if kind == "list":
        return np.asarray(x).tolist()
    return torch.from_numpy(np.array(x))


def outcome(fn, *args, **kwargs):
    """(result or the exception, sorted warning category names)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the exception is the outcome compared
            result = e
    # numpy's divide-by-zero RuntimeWarning inside sklearn is an implementation detail.
    names = {w.category.__name__ for w in caught if w.category is not RuntimeWarning}
    return result, sorted(names)


def assert_same_value(ours, ref, kind, exact):
    if ref is None:
        assert ours is None
        return
    if isinstance(ref, float):
        assert type(ours) is float, f"expected a Python float, got {type(ours)}"
        if exact:
            np.testing.assert_array_equal(ours, ref)
        else:
            np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
        return
    assert isinstance(ref, np.ndarray), type(ref)
    # numpy/list in -> numpy out; torch in -> torch out (documented).
    if kind == "torch":
        assert isinstance(ours, torch.Tensor), type(ours)
        ours = ours.numpy()
    assert isinstance(ours, np.ndarray), type(ours)
    assert ours.shape == ref.shape
    assert ours.dtype.kind == ref.dtype.kind, (ours.dtype, ref.dtype)
    if exact or ref.dtype.kind in "iub":
        np.testing.assert_array_equal(ours, ref)
    else:
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


def check(name, args, kwargs, kind="numpy", exact=False):
    """Runs sklearn on numpy inputs and ours on ``kind`` inputs; asserts the same
    values, return types and warnings, or that both refuse."""
    ref, ref_warnings = outcome(getattr(skm, name), *args, **kwargs)
    conv = {k: convert(v, kind) if k == "sample_weight" else v for k, v in kwargs.items()}
    ours, our_warnings = outcome(getattr(fm, name), *(convert(a, kind) for a in args), **conv)
    if isinstance(ref, Exception):
        assert isinstance(ours, (ValueError, TypeError)), (
            f"sklearn raised {ref!r}, we returned {ours!r}"
        )
        return
    if isinstance(ours, Exception):
        raise AssertionError(f"sklearn returned {ref!r}, we raised {ours!r}") from ours
    assert our_warnings == ref_warnings
    if isinstance(ref, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert_same_value(a, b, kind, exact)
    else:
        assert_same_value(ours, ref, kind, exact)


# ---------------------------------------------------------------- classification

rng = np.random.default_rng(0)
_T = rng.choice([0, 1, 2, 4], 300)  # class 3 never occurs
_P = np.where(rng.random(300) < 0.5, _T, rng.choice([0, 1, 2, 4, 5], 300))
# Multiples of 1/8 sum exactly, so sklearn's weighted mean of the constant regression
# output below is exact too; with other weights both sides' 0/0 becomes rounding noise
# of opposite sign (R^2 of -1e30 against 0.0).
_W = rng.integers(1, 17, 300) / 8
_W[::7] = 0.0
DATA = {
    "multiclass": (_T, _P),
    "binary": (_T % 2, _P % 2),
    "binary_other_values": (np.where(_T % 2, 7, -3), np.where(_P % 2, 7, -3)),
    "bool": (_T % 2 == 1, _P % 2 == 1),
    "one_class": (np.full(5, 3), np.full(5, 3)),
    "no_positives": (np.zeros(6, dtype=int), np.array([0, 0, 1, 0, 0, 0])),
    "single_sample": (np.array([1]), np.array([0])),
    "int8": (_T.astype(np.int8), _P.astype(np.int8)),
    "whole_floats": (_T.astype(np.float64), _P.astype(np.float32)),
}
PRF = ["precision_score", "recall_score", "f1_score", "precision_recall_fscore_support"]
CLASSIFICATION = ["accuracy_score", "confusion_matrix", *PRF]
ZERO_DIVISION = ["warn", 0, 1, np.nan]
AVERAGES = [None, "binary", "micro", "macro", "weighted", "samples"]


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("weighted", [False, True])
def test_prf_averages(data, kind, average, weighted):
    t, p = DATA[data]
    w = _W[: len(t)] if weighted else None
    if w is not None and not w.any():
        w = w + 1.0
    for name in PRF:
        for zero_division in ZERO_DIVISION:
            kwargs = dict(average=average, zero_division=zero_division, sample_weight=w)
            check(name, (t, p), kwargs, kind, exact=average is None and not weighted)
    check("fbeta_score", (t, p), dict(beta=0.5, average=average, sample_weight=w), kind)
    check("fbeta_score", (t, p), dict(beta=0.0, average=average), kind)
    check("fbeta_score", (t, p), dict(beta=np.inf, average=average), kind)


LABELS = [[2, 0], [0, 1, 2, 3, 4, 5], [9, 1], [3], [1, 1, 2], [0.0, 2.0], [-5, 2]]


@pytest.mark.parametrize("labels", LABELS, ids=str)
@pytest.mark.parametrize("average", [None, "binary", "micro", "macro", "weighted"])
def test_prf_labels(labels, average):
    """labels: subset, superset, order, absent, duplicates, whole floats, negatives."""
    for data in ("multiclass", "binary"):
        t, p = DATA[data]
        for name in PRF:
            for zero_division in ("warn", 1):
                kwargs = dict(labels=labels, average=average, zero_division=zero_division)
                check(name, (t, p), kwargs)


@pytest.mark.parametrize("pos_label", [0, 1, 2, 7, -3, True, 1.0, None, "a"])
@pytest.mark.parametrize("average", ["binary", "macro", None])
def test_pos_label(pos_label, average):
    for data in ("binary", "binary_other_values", "bool", "one_class", "multiclass"):
        t, p = DATA[data]
        for name in PRF:
            if pos_label == "a" and average == "binary":
                # Labels are integers here; sklearn scores the absent "a" as 0.
                with pytest.raises(ValueError, match="pos_label must be an integer"):
                    getattr(fm, name)(t, p, pos_label=pos_label, average=average)
                continue
            check(name, (t, p), dict(pos_label=pos_label, average=average))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("weights", ["none", "float", "int", "zeros", "nan", "negative"])
def test_accuracy(kind, normalize, weights):
    w = {
        "none": None,
        "float": _W,
        "int": np.arange(300) % 3,
        "zeros": np.zeros(300),
        "nan": np.where(np.arange(300) == 5, np.nan, 1.0),
        "negative": np.where(np.arange(300) % 2, -1.0, 2.0),
    }[weights]
    for data in ("multiclass", "binary", "bool", "single_sample", "whole_floats"):
        t, p = DATA[data]
        kwargs = dict(normalize=normalize, sample_weight=None if w is None else w[: len(t)])
        check("accuracy_score", (t, p), kwargs, kind, exact=w is None)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
@pytest.mark.parametrize("labels", [None, [4, 0, 1], [0, 1, 2, 3, 4, 5, 6], [3], [5, 4]])
@pytest.mark.parametrize("weights", ["none", "float", "int", "zeros"])
def test_confusion_matrix(kind, normalize, labels, weights):
    w = {"none": None, "float": _W, "int": np.arange(300) % 3, "zeros": np.zeros(300)}[weights]
    for data in ("multiclass", "binary", "one_class", "bool"):
        t, p = DATA[data]
        kwargs = dict(normalize=normalize, labels=labels)
        kwargs["sample_weight"] = None if w is None else w[: len(t)]
        check("confusion_matrix", (t, p), kwargs, kind, exact=normalize is None)


BAD_CLASSIFICATION = [
    ([], []),  # empty
    ([0, 1, 1], [0, 1]),  # lengths
    ([0, 1], [0, 1, 1]),
    ([0.5, 1.0], [0, 1]),  # continuous y_true
    ([0, 1], [0, 1.5]),  # continuous y_pred, not a probability
    ([0, 1], [np.nan, 1.0]),
    ([[0, 1, 2]], [[0, 1, 2]]),  # a row, not a column
]


@pytest.mark.parametrize("args", BAD_CLASSIFICATION, ids=str)
@pytest.mark.parametrize(
    "name", ["accuracy_score", "confusion_matrix", "f1_score", "precision_recall_fscore_support"]
)
def test_classification_refusals(args, name):
    kwargs = {} if name in ("accuracy_score", "confusion_matrix") else {"average": "macro"}
    check(name, args, kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(average="bad"),
        dict(zero_division=2),
        dict(zero_division="1"),
        dict(beta=-1.0),
        dict(labels=[[0, 1]]),
        dict(sample_weight=[1.0, 2.0]),
        dict(sample_weight=[[1.0, 1.0, 1.0]]),
    ],
    ids=str,
)
def test_argument_refusals(kwargs):
    kwargs = {"average": "macro", **kwargs}
    check("fbeta_score", ([0, 1, 2], [0, 2, 2]), {"beta": 1.0, **kwargs})


BETAS = [np.float32(0.1), np.float32(0.5), np.float16(0.3), np.int64(2), True, False, 3]
BETAS_REFUSED = [np.float64(np.nan), np.bool_(True), np.int8(-1)]


@pytest.mark.parametrize("beta", BETAS + BETAS_REFUSED, ids=repr)
@pytest.mark.parametrize("average", [None, "macro"])
def test_beta_any_real_number(beta, average):
    """sklearn takes any real beta >= 0 (numpy scalars, bools); an np.float32 beta is
    squared in float32, as sklearn does. The streaming metrics give the same numbers."""
    kwargs = dict(beta=beta, average=average)
    check("fbeta_score", (_T, _P), kwargs)
    if any(beta is b for b in BETAS_REFUSED):
        with pytest.raises(ValueError, match="beta must be"):
            fm.FBetaScore(6, **kwargs)
        return
    metric = fm.FBetaScore(6, **kwargs)
    metric.update(_T, _P)
    ref = skm.fbeta_score(_T, _P, **kwargs)
    np.testing.assert_allclose(metric.compute(), ref, rtol=RTOL, atol=ATOL)


# sklearn keeps the value of Python numbers only: np.int64(1), np.float32(0) and
# Fraction(1) pass its check but are read as NaN, which we copy.
ZERO_DIVISIONS = [True, False, np.int64(1), np.int64(0), np.float32(1), np.float64(1.0)]
ZERO_DIVISIONS += [np.float32(np.nan), Fraction(1)]
ZERO_DIVISIONS_REFUSED = [np.bool_(True), "nan", 0.5, np.int64(2)]


@pytest.mark.parametrize("zero_division", ZERO_DIVISIONS + ZERO_DIVISIONS_REFUSED, ids=repr)
@pytest.mark.parametrize("average", [None, "macro", "weighted"])
def test_zero_division_any_real_number(zero_division, average):
    t, p = [0, 1, 2, 1, 3], [0, 0, 0, 1, 4]  # classes 2, 3 and 4 divide by zero
    kwargs = dict(average=average, zero_division=zero_division)
    check("precision_recall_fscore_support", (t, p), kwargs)
    if any(zero_division is z for z in ZERO_DIVISIONS_REFUSED):
        with pytest.raises(ValueError, match="zero_division must be"):
            fm.Precision(5, **kwargs)
        return
    metric = fm.Precision(5, **kwargs)
    metric.update(t, p)
    ref = skm.precision_score(t, p, **kwargs)
    np.testing.assert_allclose(metric.compute(), ref, rtol=RTOL, atol=ATOL)


FLAGS = [True, False, np.bool_(False), None, 0, 1, 1.0, "true", "False"]


@pytest.mark.parametrize("flag", FLAGS, ids=repr)
def test_boolean_arguments(flag):
    """normalize and force_finite are sklearn "boolean"s: np.bool_ is taken, but None,
    0/1 and strings are refused (normalize=None used to return counts)."""
    check("accuracy_score", ([0, 1, 2], [0, 2, 2]), dict(normalize=flag))
    check("r2_score", ([1.0, 2.0, 3.0], [1.0, 2.0, 2.0]), dict(force_finite=flag))
    if isinstance(flag, (bool, np.bool_)):
        assert fm.R2Score(force_finite=flag).force_finite is flag
    else:
        with pytest.raises(ValueError, match="force_finite must be True or False"):
            fm.R2Score(force_finite=flag)


@pytest.mark.parametrize(
    "warn_for",
    [["precision"], ("recall",), {"f-score"}, set(), "precision", None, frozenset(["recall"])],
    ids=repr,
)
def test_warn_for_types(warn_for):
    check(
        "precision_recall_fscore_support",
        ([0, 1, 2], [0, 0, 0]),
        dict(average="macro", warn_for=warn_for),
    )


@pytest.mark.parametrize(
    "kwargs",
    [dict(labels=[]), dict(labels=[7]), dict(normalize="rows"), dict(sample_weight=[1, 2])],
    ids=str,
)
def test_confusion_matrix_refusals(kwargs):
    check("confusion_matrix", ([0, 1, 1], [0, 1, 0]), kwargs)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    average=st.sampled_from(AVERAGES[:5]),
    zero_division=st.sampled_from(ZERO_DIVISION),
    labels=st.one_of(st.none(), st.lists(st.integers(-1, 6), min_size=1, max_size=4)),
    weighted=st.booleans(),
)
def test_prf_property(n, k, seed, average, zero_division, labels, weighted):
    r = np.random.default_rng(seed)
    t, p = r.integers(0, k, n), r.integers(0, k, n)
    w = r.random(n) + 0.01 if weighted else None
    for name in ("precision_recall_fscore_support", "f1_score"):
        check(name, (t, p), dict(average=average, zero_division=zero_division, labels=labels))
    check("confusion_matrix", (t, p), dict(sample_weight=w))
    check("accuracy_score", (t, p), dict(sample_weight=w))


# ---------------------------------------------------------------- regression

_Y = rng.normal(3.0, 2.0, (50, 3))
_Y[:, 2] = 1.5  # a constant output: R^2's denominator is 0
_YP = _Y + rng.normal(0.0, 0.5, (50, 3))
REGRESSION = ["mean_squared_error", "mean_absolute_error", "r2_score"]
MULTIOUTPUT = ["raw_values", "uniform_average", "variance_weighted", [0.2, 0.3, 0.5], "bad"]


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("multioutput", MULTIOUTPUT, ids=str)
@pytest.mark.parametrize("weighted", [False, True])
def test_regression(name, kind, multioutput, weighted):
    w = _W[:50] if weighted else None
    extra = [{}] if name != "r2_score" else [dict(force_finite=True), dict(force_finite=False)]
    for kwargs in extra:
        kwargs = dict(kwargs, multioutput=multioutput, sample_weight=w)
        check(name, (_Y, _YP), kwargs, kind)
        check(name, (_Y[:, :2], _YP[:, :2]), kwargs, kind)  # weights of the wrong length
        check(name, (_Y[:, 0], _YP[:, 0]), kwargs, kind)  # 1-D: custom weights refused
        check(name, (_Y[:, 2], _YP[:, 2]), kwargs, kind)  # constant y_true
        check(name, (_Y[:, 2], _Y[:, 2]), kwargs, kind)  # perfect on constant
        check(name, (_Y[:, :1], _YP[:, 0]), kwargs, kind)  # (N, 1) against (N,)


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize(
    "args",
    [
        ([], []),
        ([1.0], [2.0]),  # one sample: R^2 warns and is NaN
        ([1.0, 2.0], [1.0, 2.0, 3.0]),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]),
        ([1.0, 2.0, 3.0], [1.0, np.inf, 3.0]),
        ([True, False, True], [1, 1, 0]),
        ([1, 2, 3], [[1, 1], [2, 2], [3, 3]]),
        (np.zeros((3, 1, 1)), np.zeros((3, 1, 1))),
    ],
    ids=str,
)
def test_regression_edge_inputs(name, args):
    check(name, args, {})


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sample_weight=[0.0, 0.0, 0.0]),
        dict(sample_weight=[1.0, np.nan, 1.0]),
        dict(sample_weight=[1.0, -1.0, 3.0]),
        dict(sample_weight=[1, 0, 0]),
        dict(sample_weight=[1.0, 2.0]),
    ],
    ids=str,
)
def test_regression_weights(name, kwargs):
    check(name, ([1.0, 2.0, 4.0], [1.5, 2.0, 3.0]), kwargs)


@pytest.mark.parametrize("name", REGRESSION)
def test_multioutput_weights_summing_to_zero(name):
    with pytest.raises(ValueError, match="multioutput"):  # sklearn: ZeroDivisionError
        getattr(fm, name)(_Y, _YP, multioutput=[1.0, -1.0, 0.0])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    outputs=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    weighted=st.booleans(),
    multioutput=st.sampled_from(["raw_values", "uniform_average", "variance_weighted"]),
)
def test_regression_property(n, outputs, seed, weighted, multioutput):
    r = np.random.default_rng(seed)
    y = r.normal(size=(n, outputs)) * 10.0 ** r.integers(-3, 4)
    yp = y + r.normal(size=(n, outputs))
    w = r.random(n) + 0.01 if weighted else None
    for name in REGRESSION:
        mo = multioutput if name == "r2_score" or multioutput != "variance_weighted" else None
        kwargs = dict(sample_weight=w) if mo is None else dict(sample_weight=w, multioutput=mo)
        check(name, (y, yp), kwargs)


# ---------------------------------------------------------------- input forms sklearn takes


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_negative_strides_classification(name):
    """Reversed numpy views (negative strides, which torch.from_numpy refuses) are
    copied: labels, predictions, weights and labels= alike."""
    kwargs = dict(sample_weight=_W[::-1], labels=np.array([4, 0, 1])[::-1])
    if name == "accuracy_score":
        del kwargs["labels"]
    elif name != "confusion_matrix":
        kwargs["average"] = "macro"
    check(name, (_T[::-1], _P[::-1]), kwargs)
    check(name, (_T[::-2], _P[::2]), {})


@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("kind", KINDS)
def test_column_vectors(name, kind):
    """(N, 1) labels are read as (N,) on either side, as sklearn's column_or_1d does;
    whole-number floats too. (A fractional float column is a probability column,
    documented in test_documented_differences.)"""
    kwargs = {} if name in ("accuracy_score", "confusion_matrix") else {"average": "macro"}
    t, p = _T[:, None], _P[:, None]
    for args in ((t, p), (_T, p), (t, _P), (t, p.astype(np.float64)), (_T, p.astype(np.float32))):
        check(name, args, kwargs, kind)


HUGE_LABELS = [
    ([1e20, 0.0], [0.0, 0.0]),  # past int64: sklearn reads continuous, refuses
    ([1e20, 0.0, 1e20], [1e20, 0.0, 0.0]),
    ([0.0, 1.0], [-1e19, 1.0]),
    (np.array([2.0**63, 1.0], np.float32), [0, 1]),
    ([-(2.0**63), 1.0], [0.0, 1.0]),  # the int64 range's ends are labels
    ([2.0**63 - 1024, 1.0], [2.0**63 - 1024, 0.0]),
]


@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("args", HUGE_LABELS, ids=str)
def test_floats_outside_int64_are_not_labels(name, args):
    """Whole-number floats that int64 cannot hold are refused by name, not wrapped."""
    kwargs = {} if name in ("accuracy_score", "confusion_matrix") else {"average": None}
    check(name, args, kwargs)
    ref, _ = outcome(getattr(skm, name), *args, **kwargs)
    if isinstance(ref, Exception):
        with pytest.raises(ValueError, match="outside the int64 range"):
            getattr(fm, name)(*args, **kwargs)


@pytest.mark.parametrize("name", REGRESSION)
def test_negative_strides_regression(name):
    kwargs = dict(sample_weight=_W[:50][::-1], multioutput=np.array([0.2, 0.3, 0.5])[::-1])
    check(name, (_Y[::-1, ::-1], _YP[::-1]), kwargs)
    check(name, (_Y[::-1, 0], _YP[:, 1]), {})


# ---------------------------------------------------------------- deliberate differences


def test_documented_differences():
    """Where we differ from sklearn on purpose (see classification.py's docstring)."""
    # Tensors cannot hold strings: labels must be numbers; the message names y_true.
    with pytest.raises(ValueError, match="y_true: expected numbers"):
        fm.f1_score(["a", "b"], ["a", "b"], pos_label="a")
    # Multilabel indicators and average="samples" are not supported.
    with pytest.raises(ValueError, match="y_true: expected a 1-D array"):
        fm.accuracy_score(np.eye(3, dtype=int), np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="average must be one of"):
        fm.f1_score([0, 1], [0, 1], average="samples")
    # Fractional 1-D y_pred are probabilities of class 1 and 2-D float y_pred are
    # scores (sklearn: "can't handle a mix of binary and continuous targets").
    assert fm.accuracy_score([0, 1, 1], [0.2, 0.7, 0.4]) == pytest.approx(2 / 3)
    assert fm.accuracy_score([0, 1, 1], [[0.2], [0.7], [0.4]]) == pytest.approx(2 / 3)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert fm.accuracy_score([0, 1, 1], scores) == pytest.approx(2 / 3)
    # Duplicate labels: sklearn returns an empty row for the first copy; we refuse.
    with pytest.raises(ValueError, match="labels: contains duplicates"):
        fm.confusion_matrix([0, 1, 2], [0, 1, 0], labels=[1, 1, 2])
    # Non-integral labels= can never match an integer label: refused, not ignored.
    with pytest.raises(ValueError, match="labels: expected integer class labels"):
        fm.precision_score([0, 1], [0, 1], labels=[0.5, 1], average=None)
    # labels= past int64 can never match a label (those are refused): refused too. So
    # are uint64 labels past int64 (sklearn takes them); as regression targets they
    # are read as float64, as sklearn does.
    with pytest.raises(ValueError, match="labels: 1e[+]20 is outside the int64 range"):
        fm.confusion_matrix([0, 1], [0, 1], labels=[1e20, 1])
    huge = np.array([2**63, 1], dtype=np.uint64)
    with pytest.raises(ValueError, match="y_true: 9.22337e[+]18 is outside the int64 range"):
        fm.accuracy_score(huge, [0, 1])
    assert fm.mean_squared_error(huge, [0.0, 1.0]) == skm.mean_squared_error(huge, [0.0, 1.0])
    # sklearn parses numeric strings as regression targets; we want numbers.
    with pytest.raises(ValueError, match="y_true: expected numbers"):
        fm.mean_squared_error(["1", "2"], ["1", "2"])
    # torch in -> torch out, and float32 regression inputs are reduced in float64
    # (sklearn returns float32 arrays for float32 tensors).
    yt, yp = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.5, 2.0])
    raw = fm.mean_squared_error(yt, yp, multioutput="raw_values")
    assert isinstance(raw, torch.Tensor) and raw.dtype == torch.float64
    assert fm.mean_squared_error(yt, yp) == 1.25 / 3
    # r2 with force_finite=False gives sklearn's values without numpy's RuntimeWarning.
    assert np.isnan(fm.r2_score([3.0, 3.0], [3.0, 3.0], force_finite=False))
    assert fm.r2_score([3.0, 3.0], [3.0, 2.0], force_finite=False) == -np.inf


def test_undefined_metric_warning_is_sklearn_compatible_category():
    with pytest.warns(fm.UndefinedMetricWarning, match="Precision is ill-defined"):
        fm.precision_score([0, 1], [0, 0])
    assert issubclass(fm.UndefinedMetricWarning, UserWarning)


# ---------------------------------------------------------------- streaming

STREAM_SCORES = [
    (fm.Precision, "precision_score", {}),
    (fm.Recall, "recall_score", {}),
    (fm.F1Score, "f1_score", {}),
    (fm.FBetaScore, "fbeta_score", {"beta": 2.0}),
]


def batches(n, sizes=(1, 17, 0, 64)):
    """Splits range(n) into consecutive slices of the given sizes, the rest last."""
    out, start = [], 0
    for size in sizes:
        out.append(slice(start, min(start + size, n)))
        start = min(start + size, n)
    out.append(slice(start, n))
    return out


@pytest.mark.parametrize(("cls", "ref", "extra"), STREAM_SCORES, ids=lambda x: str(x)[:20])
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted", "binary"])
@pytest.mark.parametrize("labels", [None, [4, 0, 3]])
@pytest.mark.parametrize("zero_division", ["warn", 0, 1, np.nan])
def test_streaming_scores_equal_one_shot(cls, ref, extra, average, labels, zero_division):
    t, p = DATA["binary"] if average == "binary" else DATA["multiclass"]
    m = cls(6, average=average, labels=labels, zero_division=zero_division, **extra)
    for s in batches(len(t)):
        m.update(torch.from_numpy(t[s]), torch.from_numpy(p[s]))
    kwargs = dict(extra, average=average, labels=labels, zero_division=zero_division)
    ref_value, ref_warnings = outcome(getattr(skm, ref), t, p, **kwargs)
    ours, our_warnings = outcome(m.compute)
    assert our_warnings == ref_warnings
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float64  # documented
    np.testing.assert_allclose(ours.numpy(), ref_value, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_streaming_confusion_matrix_and_accuracy(normalize):
    t, p = DATA["multiclass"]
    cm, acc = fm.ConfusionMatrix(6, normalize=normalize), fm.Accuracy(6)
    for s in batches(len(t)):
        cm.update(t[s], p[s])
        acc.update(t[s], p[s])
    ref = skm.confusion_matrix(t, p, labels=range(6), normalize=normalize)
    np.testing.assert_allclose(cm.compute().numpy(), ref, rtol=RTOL, atol=ATOL)
    assert float(acc.compute()) == skm.accuracy_score(t, p)


STREAM_REGRESSION = [
    (fm.MeanSquaredError, "mean_squared_error"),
    (fm.MeanAbsoluteError, "mean_absolute_error"),
    (fm.R2Score, "r2_score"),
]


@pytest.mark.parametrize(("cls", "ref"), STREAM_REGRESSION)
@pytest.mark.parametrize("multioutput", ["raw_values", "uniform_average", [0.2, 0.3, 0.5]])
@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_regression_equals_one_shot(cls, ref, multioutput, weighted):
    m = cls(3, multioutput=multioutput)
    w = _W[:50] + 0.125 if weighted else None
    for s in batches(50, sizes=(1, 3, 0, 20)):
        m.update(_Y[s], _YP[s], None if w is None else w[s])
    expected = getattr(skm, ref)(_Y, _YP, sample_weight=w, multioutput=multioutput)
    np.testing.assert_allclose(m.compute().numpy(), expected, rtol=RTOL, atol=ATOL)


ALL_STREAMING = [
    lambda: fm.ConfusionMatrix(3),
    lambda: fm.Accuracy(3),
    lambda: fm.Precision(3),
    lambda: fm.Recall(3, average="micro"),
    lambda: fm.F1Score(3, average=None),
    lambda: fm.FBetaScore(3, beta=0.5, average="weighted"),
    lambda: fm.MeanSquaredError(),
    lambda: fm.MeanAbsoluteError(),
    lambda: fm.R2Score(),
]


@pytest.mark.parametrize("make", ALL_STREAMING)
def test_streaming_lifecycle(make):
    """compute() before update; reset(); state_dict round trip in the middle."""
    r = np.random.default_rng(1)
    data = [(r.integers(0, 3, n), r.integers(0, 3, n)) for n in (5, 9, 4)]
    m = make()
    if isinstance(m, fm.ConfusionMatrix) and not isinstance(m, (fm.Accuracy, fm.FBetaScore)):
        assert torch.equal(m.compute(), torch.zeros(3, 3, dtype=torch.int64))
    else:
        with pytest.raises(ValueError, match="no samples since the last reset"):
            m.compute()
    m.update(*data[0])
    saved = m.state_dict()
    m.reset()
    fresh = make()
    for t, p in data[1:]:
        m.update(t, p)
        fresh.update(t, p)
    assert torch.equal(torch.as_tensor(m.compute()), torch.as_tensor(fresh.compute()))
    resumed, uninterrupted = make(), make()
    resumed.load_state_dict(saved)
    for i, (t, p) in enumerate(data):
        uninterrupted.update(t, p)
        if i:
            resumed.update(t, p)
    assert torch.equal(torch.as_tensor(resumed.compute()), torch.as_tensor(uninterrupted.compute()))
    one_shot = make()
    one_shot.update(np.concatenate([d[0] for d in data]), np.concatenate([d[1] for d in data]))
    # Counts are exact; merged regression moments (Chan) round differently from one batch.
    np.testing.assert_allclose(resumed.compute(), one_shot.compute(), rtol=RTOL, atol=ATOL)


EMPTY_BATCHES = [([], []), (np.array([], int), np.array([], int)), (torch.zeros(0), torch.zeros(0))]


@pytest.mark.parametrize(
    "make", [*ALL_STREAMING, lambda: fm.MeanSquaredError(2), lambda: fm.R2Score(2)]
)
def test_streaming_empty_batches_add_nothing(make):
    """An empty batch, a [] list (np.asarray([]) is float64) included, is a no-op."""
    r = np.random.default_rng(2)
    m = make()
    regression = not isinstance(m, fm.ConfusionMatrix)
    width = m.num_outputs if regression else 3
    t, p = r.integers(0, 3, (9, width)), r.integers(0, 3, (9, width))
    if regression:
        t, p = t.astype(np.float64), p + r.random((9, width))
    else:
        t, p = t[:, 0], p[:, 0]
    ref = make()
    ref.update(t, p)
    empty = [*EMPTY_BATCHES, (np.zeros(0, int), np.zeros((0, width)))]
    for batch in empty[:2]:
        m.update(*batch)
    m.update(t, p)
    for batch in empty[2:]:
        m.update(*batch)
    if regression:
        m.update([], [], sample_weight=[])
    ours, theirs = m.state_dict(), ref.state_dict()
    assert ours.pop("updates") > theirs.pop("updates")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert torch.equal(torch.as_tensor(m.compute()), torch.as_tensor(ref.compute()))


def test_streaming_argument_refusals():
    with pytest.raises(ValueError, match="custom weights"):
        fm.MeanSquaredError(1, multioutput=[1.0])
    with pytest.raises(ValueError, match="pos_label"):
        fm.F1Score(2, average="binary", pos_label=2)
    assert fm.F1Score(2, average="binary", pos_label=True).pos_label == 1
    with pytest.raises(ValueError, match="y_true: expected integer class labels"):
        fm.Accuracy(2).update(np.array([0.0, 1.0]), np.array([0, 1]))


def test_streaming_regression_skips_value_checks():
    """Documented: update() does not sync to look for NaN (the functions raise)."""
    m = fm.MeanSquaredError()
    m.update([1.0, np.nan], [1.0, 2.0])
    assert torch.isnan(m.compute())
    with pytest.raises(ValueError, match="y_true: contains NaN"):
        fm.mean_squared_error([1.0, np.nan], [1.0, 2.0])
