"""Stateful metrics: streaming over batches equals scikit-learn on all the data,
shared state, state_dict resume, reset, sync, the deferred (CUDA-style) range check,
and bad input. Tolerances: counts exact, scores rtol 1e-12, regression rtol 1e-10
(running float64 moments vs sklearn's two-pass sums)."""

import os
import tempfile
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fusedoptim.metrics as fm
from fusedoptim import _backend

C = 6


def sk(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def data(seed=0, n=2_003, c=C, absent=(3,)):
    rng = np.random.default_rng(seed)
    classes = np.array([k for k in range(c) if k not in absent])
    t = rng.choice(classes, n)
    p = np.where(rng.random(n) < 0.5, t, rng.choice(classes, n))
    return t, p


def batches(n, seed=1):
    """Uneven batch bounds, including an empty batch."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n), 6, replace=False))
    bounds = [0, *cuts.tolist(), cuts[-1], n]
    return list(zip(bounds[:-1], bounds[1:]))


def feed(metric, t, p, kind="torch"):
    for a, b in batches(len(t)):
        if kind == "torch":
            metric.update(torch.from_numpy(t[a:b]), torch.from_numpy(p[a:b]))
        else:
            metric.update(t[a:b], p[a:b])
    return metric


SCORES = [
    (fm.Precision, skm.precision_score, {}),
    (fm.Recall, skm.recall_score, {}),
    (fm.F1Score, skm.f1_score, {}),
    (fm.FBetaScore, skm.fbeta_score, {"beta": 0.5}),
]


@pytest.mark.parametrize(("cls", "ref", "extra"), SCORES)
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_streaming_scores_equal_sklearn(cls, ref, extra, average, kind):
    t, p = data()
    for labels in (None, [5, 0, 3]):
        metric = feed(cls(C, average=average, labels=labels, **extra), t, p, kind)
        got = metric.compute()
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
        want = sk(ref, t, p, average=average, labels=labels, zero_division=0, **extra)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_streaming_confusion_matrix_and_accuracy():
    t, p = data(2)
    cm = feed(fm.ConfusionMatrix(C), t, p)
    assert torch.equal(cm.compute(), torch.from_numpy(skm.confusion_matrix(t, p, labels=range(C))))
    for normalize in ("true", "pred", "all"):
        got = feed(fm.ConfusionMatrix(C, normalize=normalize), t, p).compute()
        np.testing.assert_allclose(
            got.numpy(),
            sk(skm.confusion_matrix, t, p, labels=range(C), normalize=normalize),
            rtol=1e-12,
        )
    acc = feed(fm.Accuracy(C), t, p).compute()
    assert float(acc) == pytest.approx(skm.accuracy_score(t, p), rel=1e-12)


@pytest.mark.parametrize("pos_label", [0, 1])
def test_streaming_binary_with_probabilities(pos_label):
    rng = np.random.default_rng(3)
    t = rng.integers(0, 2, 999)
    prob = rng.random(999)
    metric = fm.F1Score(2, average="binary", pos_label=pos_label)
    scores = fm.Accuracy(2, share_state_with=metric)
    for a, b in batches(999):
        metric.update(torch.from_numpy(t[a:b]), torch.from_numpy(prob[a:b]))
    hard = (prob > 0.5).astype(int)
    assert float(metric.compute()) == pytest.approx(
        skm.f1_score(t, hard, pos_label=pos_label), rel=1e-12
    )
    assert float(scores.compute()) == pytest.approx(skm.accuracy_score(t, hard), rel=1e-12)


def test_scores_with_class_dimension():
    rng = np.random.default_rng(4)
    t = rng.integers(0, C, 500)
    logits = torch.randn(500, C, generator=torch.Generator().manual_seed(0))
    m = fm.Recall(C, average="macro")
    m.update(torch.from_numpy(t), logits)
    want = sk(skm.recall_score, t, logits.argmax(1).numpy(), average="macro")
    assert float(m.compute()) == pytest.approx(want, rel=1e-12)


def test_shared_state_counts_once():
    t, p = data(5)
    cm = fm.ConfusionMatrix(C)
    f1 = fm.F1Score(C, average="macro", share_state_with=cm)
    acc = fm.Accuracy(C, share_state_with=f1)
    feed(acc, t, p)
    assert int(cm.compute().sum()) == len(t)
    assert float(f1.compute()) == pytest.approx(sk(skm.f1_score, t, p, average="macro"), rel=1e-12)
    assert float(acc.compute()) == pytest.approx(skm.accuracy_score(t, p), rel=1e-12)
    f1.reset()
    assert int(cm.compute().sum()) == 0
    with pytest.raises(ValueError, match="share_state_with"):
        fm.F1Score(C + 1, share_state_with=cm)
    with pytest.raises(ValueError, match="share_state_with"):
        fm.MeanSquaredError(share_state_with=cm)


def test_state_dict_resume_equals_one_run():
    t, p = data(6)
    half = len(t) // 2
    first = fm.F1Score(C, average="weighted")
    first.update(torch.from_numpy(t[:half]), torch.from_numpy(p[:half]))
    saved = first.state_dict()
    first.update(torch.from_numpy(t[:10]), torch.from_numpy(p[:10]))  # must not leak into saved
    resumed = fm.F1Score(C, average="weighted")
    resumed.load_state_dict(saved)
    resumed.update(torch.from_numpy(t[half:]), torch.from_numpy(p[half:]))
    whole = feed(fm.F1Score(C, average="weighted"), t, p)
    assert torch.equal(resumed.compute(), whole.compute())
    assert saved["updates"] == 1
    with pytest.raises(ValueError, match="shape"):
        fm.F1Score(C + 1).load_state_dict(saved)
    with pytest.raises(ValueError, match="keys"):
        fm.F1Score(C).load_state_dict({"counts": saved["counts"]})


def test_bad_label_on_cpu_raises_and_keeps_state():
    m = fm.ConfusionMatrix(3)
    m.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    before = m.compute()
    with pytest.raises(ValueError, match=r"y_true\[1\] = 3 is not a class label"):
        m.update(torch.tensor([0, 3]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"y_pred\[0\] = -1"):
        m.update(np.array([0, 1]), np.array([-1, 1]))
    assert torch.equal(m.compute(), before)


def test_deferred_range_check(monkeypatch):
    """The CUDA path (torch ops, no host sync) run on CPU: invalid pairs are skipped and
    counted on the device; compute() raises until reset()."""
    monkeypatch.setattr(_backend, "confusion_matrix_add_", _backend._confusion_matrix_add_torch)
    m = fm.F1Score(3, average="micro")
    m.update(torch.tensor([0, 1, 5, 2]), torch.tensor([0, 1, 1, -1]))
    with pytest.raises(ValueError, match="2 input\\(s\\) passed to update\\(\\)"):
        m.compute()
    assert int(m.state_dict()["counts"].sum()) == 2
    m.reset()
    m.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert float(m.compute()) == 1.0


def test_device_follow_and_to():
    m = fm.Accuracy(2)
    assert m.device == torch.device("cpu")
    m.to("cpu").update([0, 1], [0, 1])
    assert float(m.compute()) == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fm.F1Score(0), "num_classes"),
        (lambda: fm.F1Score(3, average="samples"), "average"),
        (lambda: fm.F1Score(3, labels=[3]), "labels \\[3\\]"),
        (lambda: fm.F1Score(3, average="binary", pos_label=3), "pos_label"),
        (lambda: fm.F1Score(3, zero_division=0.5), "zero_division"),
        (lambda: fm.ConfusionMatrix(3, normalize="x"), "normalize"),
        (lambda: fm.F1Score(3).compute(), "no samples"),
        (lambda: fm.Accuracy(3).compute(), "no samples"),
        (lambda: fm.F1Score(3).update([0, 1], torch.rand(2, 4)), "num_classes=3"),
        (lambda: fm.F1Score(3).update([0, 1], [0.1, 0.9]), "binary probabilities"),
        (lambda: fm.F1Score(3).update([0.0, 1.0], [0, 1]), "integer class labels"),
        (lambda: fm.F1Score(3).update([0, 1, 2], [0, 1]), "different lengths"),
        (lambda: fm.MeanSquaredError(0), "num_outputs"),
        (lambda: fm.MeanSquaredError(multioutput="variance_weighted"), "multioutput"),
        (lambda: fm.MeanSquaredError(2).update([1.0, 2.0], [1.0, 2.0]), "2 output"),
        (lambda: fm.R2Score().compute(), "no samples"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_binary_average_on_multiclass_data():
    m = fm.Precision(3, average="binary")
    m.update([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="average='binary'"):
        m.compute()


# -- regression ----------------------------------------------------------------------

REG = [
    (fm.MeanSquaredError, skm.mean_squared_error, {}),
    (fm.MeanAbsoluteError, skm.mean_absolute_error, {}),
    (fm.R2Score, skm.r2_score, {}),
    (fm.R2Score, skm.r2_score, {"multioutput": "variance_weighted"}),
    (fm.MeanSquaredError, skm.mean_squared_error, {"multioutput": "raw_values"}),
    (fm.MeanAbsoluteError, skm.mean_absolute_error, {"multioutput": [0.2, 0.3, 0.5]}),
]


@pytest.mark.parametrize(("cls", "ref", "extra"), REG)
@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_regression(cls, ref, extra, weighted):
    rng = np.random.default_rng(7)
    n = 1_501
    # A large offset: naive sums of y and y^2 would lose R^2 entirely here.
    t = 1e6 + rng.normal(size=(n, 3))
    p = t + rng.normal(scale=0.5, size=(n, 3))
    w = rng.random(n) if weighted else None
    m = cls(3, **extra)
    for a, b in batches(n):
        m.update(torch.from_numpy(t[a:b]), p[a:b], None if w is None else w[a:b])
    want = ref(t, p, sample_weight=w, **extra)
    np.testing.assert_allclose(m.compute().numpy(), want, rtol=1e-10)


def test_regression_shared_state_and_resume():
    rng = np.random.default_rng(8)
    t = rng.normal(size=400)
    p = t + rng.normal(size=400)
    mse = fm.MeanSquaredError()
    r2 = fm.R2Score(share_state_with=mse)
    mse.update(t[:150], p[:150])
    saved = r2.state_dict()
    other = fm.R2Score()
    other.load_state_dict(saved)
    other.update(t[150:], p[150:])
    mse.update(t[150:], p[150:])
    assert float(r2.compute()) == pytest.approx(skm.r2_score(t, p), rel=1e-10)
    assert float(other.compute()) == pytest.approx(skm.r2_score(t, p), rel=1e-10)
    assert float(mse.compute()) == pytest.approx(skm.mean_squared_error(t, p), rel=1e-10)


# -- sync ----------------------------------------------------------------------------


def test_sync_is_a_no_op_without_distributed():
    m = fm.Accuracy(2)
    m.update([0, 1], [0, 0])
    assert m.sync() is m
    assert float(m.compute()) == 0.5


def _sync_worker(rank, world, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        t, p = data(9)
        rng = np.random.default_rng(10)
        y = 50.0 + rng.normal(size=600)
        yp = y + rng.normal(size=600)
        part = slice(rank * len(t) // world, (rank + 1) * len(t) // world)
        rpart = slice(rank * 600 // world, (rank + 1) * 600 // world)
        f1 = fm.F1Score(C, average="macro")
        f1.update(t[part], p[part])
        r2 = fm.R2Score()
        r2.update(y[rpart], yp[rpart])
        f1.sync()
        r2.sync()
        results[rank] = (float(f1.compute()), float(r2.compute()))
    finally:
        dist.destroy_process_group()


def test_sync_two_processes():
    with tempfile.TemporaryDirectory() as tmp:
        manager = mp.Manager()
        results = manager.dict()
        mp.spawn(_sync_worker, args=(2, os.path.join(tmp, "init"), results), nprocs=2)
        got = dict(results)
    t, p = data(9)
    rng = np.random.default_rng(10)
    y = 50.0 + rng.normal(size=600)
    yp = y + rng.normal(size=600)
    want = (sk(skm.f1_score, t, p, average="macro"), skm.r2_score(y, yp))
    for rank in (0, 1):
        assert got[rank][0] == pytest.approx(want[0], rel=1e-12)
        assert got[rank][1] == pytest.approx(want[1], rel=1e-10)
