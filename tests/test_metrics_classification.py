"""fusedoptim.metrics classification functions against scikit-learn.

Tolerance: every score comes from exact integer (or float64 weighted) counts, so the
only differences are float64 rounding in divisions and averages: rtol 1e-12. Counts
and confusion matrices must be equal.
"""

import warnings

import hypothesis.strategies as st
import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings

import fusedoptim.metrics as fm
from fusedoptim.metrics import _counting

RTOL = 1e-12


def sk(fn, *args, **kwargs):
    """Calls sklearn with its UndefinedMetricWarning/UserWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def close(ours, ref):
    if isinstance(ref, tuple):
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            close(a, b)
        return
    if ref is None:
        assert ours is None
        return
    if isinstance(ours, torch.Tensor):
        ours = ours.cpu().numpy()
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float), np.asarray(ref, dtype=float), rtol=RTOL, atol=1e-15
    )


def random_case(seed, n=1001, k=7, absent=(), weighted=False):
    rng = np.random.default_rng(seed)
    classes = np.array([c for c in range(k) if c not in absent])
    t = rng.choice(classes, n)
    p = np.where(rng.random(n) < 0.4, t, rng.choice(classes, n))
    w = rng.random(n) * 3 if weighted else None
    return t, p, w


KINDS = ["numpy", "torch", "torch_int32", "list"]


def convert(x, kind):
    if x is None:
        return None
    if kind == "numpy":
        return x
    if kind == "list":
        return x.tolist()
    t = torch.from_numpy(np.asarray(x).copy())
    return t.to(torch.int32) if kind == "torch_int32" and not t.is_floating_point() else t


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_prfs_random_multiclass(kind, weighted, average):
    t, p, w = random_case(1, absent=(4,), weighted=weighted)
    for beta in (0.5, 1.0, 2.0):
        ours = fm.precision_recall_fscore_support(
            convert(t, kind),
            convert(p, kind),
            beta=beta,
            average=average,
            sample_weight=convert(w, kind),
            zero_division=0,
        )
        ref = sk(
            skm.precision_recall_fscore_support,
            t,
            p,
            beta=beta,
            average=average,
            sample_weight=w,
            zero_division=0,
        )
        close(ours, ref)
        if average is None:
            expect = np.ndarray if kind in ("numpy", "list") else torch.Tensor
            assert isinstance(ours[0], expect)


@pytest.mark.parametrize("zero_division", [0, 1, np.nan])
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_labels_subset_order_and_absent(zero_division, average):
    t, p, _ = random_case(2, n=300, k=6, absent=(1,))
    labels = [5, 1, 0, 9]  # 1 and 9 never occur
    for fn in (fm.precision_score, fm.recall_score, fm.f1_score):
        ref_fn = getattr(skm, fn.__name__)
        close(
            fn(t, p, labels=labels, average=average, zero_division=zero_division),
            sk(ref_fn, t, p, labels=labels, average=average, zero_division=zero_division),
        )
    close(
        fm.fbeta_score(t, p, beta=3.0, labels=labels, average=average, zero_division=zero_division),
        sk(
            skm.fbeta_score,
            t,
            p,
            beta=3.0,
            labels=labels,
            average=average,
            zero_division=zero_division,
        ),
    )


@pytest.mark.parametrize("pos_label", [0, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary(pos_label, weighted):
    t, p, w = random_case(3, n=257, k=2, weighted=weighted)
    for name in ("precision_score", "recall_score", "f1_score"):
        ours = getattr(fm, name)(
            torch.from_numpy(t), torch.from_numpy(p), pos_label=pos_label, sample_weight=w
        )
        assert isinstance(ours, float)
        close(ours, sk(getattr(skm, name), t, p, pos_label=pos_label, sample_weight=w))


def test_binary_with_other_label_values():
    rng = np.random.default_rng(4)
    t = rng.choice([-1, 1], 100)
    p = rng.choice([-1, 1], 100)
    close(fm.f1_score(t, p), sk(skm.f1_score, t, p))
    t2, p2 = np.where(t > 0, 5, 2), np.where(p > 0, 5, 2)
    close(fm.f1_score(t2, p2, pos_label=2), sk(skm.f1_score, t2, p2, pos_label=2))
    with pytest.raises(ValueError, match="pos_label=1 is not a valid label"):
        fm.f1_score(t2, p2)


@pytest.mark.parametrize("zero_division", [0, 1, np.nan])
def test_single_class(zero_division):
    t = np.full(10, 3)
    for average in ("binary", "micro", "macro", "weighted", None):
        close(
            fm.precision_recall_fscore_support(t, t, average=average, zero_division=zero_division),
            sk(
                skm.precision_recall_fscore_support,
                t,
                t,
                average=average,
                zero_division=zero_division,
            ),
        )
    with pytest.warns(UserWarning, match="A single label was found"):  # as sklearn
        assert np.array_equal(fm.confusion_matrix(t, t), [[10]])


def test_zero_division_warn_matches_sklearn_and_warns():
    t = np.array([0, 0, 1, 1])
    p = np.array([0, 0, 0, 0])
    with pytest.warns(fm.UndefinedMetricWarning, match="Precision is ill-defined"):
        ours = fm.precision_score(t, p)
    with pytest.warns(skm._classification.UndefinedMetricWarning):
        ref = skm.precision_score(t, p)
    assert ours == ref == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fm.f1_score(t, p, average="macro", zero_division=0) == sk(
            skm.f1_score, t, p, average="macro", zero_division=0
        )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix(kind, normalize):
    t, p, w = random_case(5, n=500, k=5, absent=(2,), weighted=True)
    for weights in (None, w, (w * 4).astype(np.int64)):
        for labels in (None, [4, 0, 2, 7]):
            ours = fm.confusion_matrix(
                convert(t, kind),
                convert(p, kind),
                labels=labels,
                sample_weight=convert(weights, kind),
                normalize=normalize,
            )
            ref = sk(
                skm.confusion_matrix,
                t,
                p,
                labels=labels,
                sample_weight=weights,
                normalize=normalize,
            )
            if isinstance(ours, torch.Tensor):
                ours = ours.numpy()
            assert ours.shape == ref.shape and ours.dtype.kind == ref.dtype.kind
            np.testing.assert_allclose(ours, ref, rtol=RTOL)


def test_confusion_matrix_negative_and_sparse_labels():
    rng = np.random.default_rng(6)
    for values in ([-3, 0, 8], [0, 10**9, 7]):
        t = rng.choice(values, 200)
        p = rng.choice(values, 200)
        assert np.array_equal(fm.confusion_matrix(t, p), skm.confusion_matrix(t, p))
        close(fm.f1_score(t, p, average=None), sk(skm.f1_score, t, p, average=None))


def test_many_classes_without_the_table(monkeypatch):
    monkeypatch.setattr(_counting, "_MATRIX_MAX_CELLS", 16)
    t, p, w = random_case(7, n=400, k=9, weighted=True)
    for average in (None, "micro", "macro", "weighted"):
        close(
            fm.precision_recall_fscore_support(
                t, p, average=average, sample_weight=w, zero_division=0
            ),
            sk(
                skm.precision_recall_fscore_support,
                t,
                p,
                average=average,
                sample_weight=w,
                zero_division=0,
            ),
        )
    with pytest.raises(ValueError, match="too large"):
        fm.confusion_matrix(t, p)


@pytest.mark.parametrize("kind", KINDS)
def test_confusion_matrix_labels_subset_of_many_classes(kind, monkeypatch):
    """labels= asks for a len(labels)^2 matrix: pairs with another label are dropped
    (as sklearn does) before counting, so a table too large for all the classes is
    never needed."""
    t = np.arange(9_000)  # more classes than the K x K table may hold (8192)
    p = np.where(t % 3 == 0, t, (t + 1) % 9_000)
    for labels in ([0, 1], [5, 2, 3, 4, 8_999]):
        ours = fm.confusion_matrix(convert(t, kind), convert(p, kind), labels=labels)
        if isinstance(ours, torch.Tensor):
            ours = ours.numpy()
        ref = skm.confusion_matrix(t, p, labels=labels)
        assert ours.dtype == ref.dtype and np.array_equal(ours, ref)
    with pytest.raises(ValueError, match="too large"):
        fm.confusion_matrix(t, p)
    monkeypatch.setattr(_counting, "_MATRIX_MAX_CELLS", 16)  # 4 labels fit, 7 classes don't
    t, p, w = random_case(9, n=400, weighted=True)
    for weights in (None, w, np.round(w * 4).astype(np.int64)):
        for normalize in (None, "true", "pred", "all"):
            kwargs = dict(labels=[6, -1, 0, 2], sample_weight=weights, normalize=normalize)
            ours = fm.confusion_matrix(t, p, **kwargs)
            ref = sk(skm.confusion_matrix, t, p, **kwargs)
            assert ours.dtype == ref.dtype
            close(ours, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_accuracy(kind):
    t, p, w = random_case(8, n=333, weighted=True)
    for normalize in (True, False):
        for weights in (None, w):
            ours = fm.accuracy_score(
                convert(t, kind),
                convert(p, kind),
                normalize=normalize,
                sample_weight=convert(weights, kind),
            )
            assert isinstance(ours, float)
            close(ours, skm.accuracy_score(t, p, normalize=normalize, sample_weight=weights))


def test_scores_and_probabilities_as_y_pred():
    rng = np.random.default_rng(9)
    t = rng.integers(0, 4, 200)
    scores = rng.random((200, 4)).astype(np.float32)
    close(
        fm.f1_score(t, scores, average="macro"),
        sk(skm.f1_score, t, scores.argmax(1), average="macro"),
    )
    close(
        fm.accuracy_score(torch.from_numpy(t), torch.from_numpy(scores)),
        skm.accuracy_score(t, scores.argmax(1)),
    )
    tb = rng.integers(0, 2, 200)
    prob = rng.random(200)
    prob[:3] = [0.5, 0.0, 1.0]  # 0.5 is class 0: the rule is p > 0.5
    close(fm.f1_score(tb, prob), sk(skm.f1_score, tb, (prob > 0.5).astype(int)))
    close(fm.recall_score(tb, prob[:, None]), sk(skm.recall_score, tb, (prob > 0.5).astype(int)))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    average=st.sampled_from([None, "micro", "macro", "weighted"]),
    zero_division=st.sampled_from([0, 1]),
    weighted=st.booleans(),
)
def test_prfs_property(n, k, seed, average, zero_division, weighted):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = rng.integers(0, k, n)
    w = rng.random(n) if weighted else None
    close(
        fm.precision_recall_fscore_support(
            t, p, average=average, sample_weight=w, zero_division=zero_division
        ),
        sk(
            skm.precision_recall_fscore_support,
            t,
            p,
            average=average,
            sample_weight=w,
            zero_division=zero_division,
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a 1 x 1 matrix warns, as in sklearn
        ours = fm.confusion_matrix(t, p, sample_weight=w)
    assert np.array_equal(ours, sk(skm.confusion_matrix, t, p, sample_weight=w))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fm.f1_score([0, 1, 1], [0, 1]), "different lengths"),
        (lambda: fm.f1_score(np.array([0.5, 1.0]), [0, 1]), "whole-number class labels"),
        (lambda: fm.f1_score([0, 1, 2], [0, 1, 2]), "average='binary'"),
        (lambda: fm.f1_score([0, 1], [0, 1], average="samples"), "average must be one of"),
        (lambda: fm.f1_score([0, 1], [0.2, 1.5]), "outside \\[0, 1\\]"),
        (lambda: fm.f1_score([0, 1], [0.2, np.nan]), "outside \\[0, 1\\]"),
        (lambda: fm.f1_score(["a", "b"], ["a", "b"]), "encode string"),
        (lambda: fm.f1_score([0, 1], [0, 1], zero_division=2), "zero_division"),
        (lambda: fm.fbeta_score([0, 1], [0, 1], beta=-1), "beta must be"),
        (lambda: fm.f1_score([], []), "empty"),
        (lambda: fm.confusion_matrix([0, 1], [0, 1], labels=[]), "at least one label"),
        (lambda: fm.confusion_matrix([0, 1], [0, 1], labels=[5]), "must be in y_true"),
        (lambda: fm.confusion_matrix([0, 1], [0, 1], normalize="rows"), "normalize"),
        (lambda: fm.f1_score([[0, 1], [1, 0]], [0, 1]), "1-D array of class labels"),
        (lambda: fm.f1_score([0, 1], np.array([[0, 1], [1, 0]])), "multilabel"),
        (lambda: fm.f1_score([0, 1], [0, 1], sample_weight=[1.0]), "sample_weight"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_pos_label_ignored_warning_like_sklearn():
    t, p, _ = random_case(10, n=50, k=3)
    with pytest.warns(UserWarning, match="pos_label"):
        ours = fm.f1_score(t, p, average="macro", pos_label=2)
    close(ours, sk(skm.f1_score, t, p, average="macro", pos_label=2))


def test_read_only_and_non_native_numpy():
    t, p, _ = random_case(11, n=100, k=3)
    t.setflags(write=False)
    p_be = p.astype(">i8")
    close(fm.f1_score(t, p_be, average="macro"), sk(skm.f1_score, t, p, average="macro"))
