"""Stateful metrics: streaming over batches equals scikit-learn on all the data,
shared state, state_dict resume, reset, sync, the deferred (CUDA-style) range check,
bad input, update's argument names and order, and metrics sent to other processes.
Tolerances: counts exact, scores rtol 1e-12, regression rtol 1e-10 (running float64
moments vs sklearn's two-pass sums)."""

import copy
import os
import pickle
import re
import socket
import tempfile
import time
import warnings
from datetime import timedelta
from multiprocessing.reduction import ForkingPickler

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

    def device_path(counts, y_true, y_pred, names):
        return _backend._confusion_matrix_add_torch(counts, y_true, y_pred)

    monkeypatch.setattr(_backend, "confusion_matrix_add_", device_path)
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


# -- update's argument names and order -----------------------------------------------

# sklearn's order in the message of a refused swap.
ORDER = re.escape(
    "update() takes (y_true, y_pred), scikit-learn's order; torchmetrics' order is "
    "update(preds=..., target=...)"
)

ALL = [
    lambda: fm.ConfusionMatrix(3),
    lambda: fm.Accuracy(3),
    lambda: fm.Precision(3, average=None),
    lambda: fm.Recall(3, average="micro"),
    lambda: fm.F1Score(3),
    lambda: fm.FBetaScore(3, beta=2.0),
    lambda: fm.MeanSquaredError(),
    lambda: fm.MeanAbsoluteError(),
    lambda: fm.R2Score(),
]


def asymmetric_batch(metric):
    """(truth, prediction) whose swap changes the state (a non-symmetric confusion
    matrix; another y_true mean and variance)."""
    if isinstance(metric, fm.ConfusionMatrix):
        return torch.tensor([0, 0, 1, 2, 2, 1]), torch.tensor([0, 1, 1, 2, 0, 0])
    return torch.tensor([1.0, 2.0, 4.0, 8.0]), torch.tensor([1.5, 2.0, 3.0, 9.0])


def same_state_dict(a, b):
    return a.keys() == b.keys() and all(
        torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a
    )


def same_state(a, b):
    return same_state_dict(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("make", ALL)
def test_update_takes_sklearn_and_torchmetrics_names(make):
    reference = make()
    truth, prediction = asymmetric_batch(reference)
    reference.update(truth, prediction)
    swapped = make()
    swapped.update(prediction, truth)
    assert not same_state(swapped, reference)  # the data tells the two orders apart
    for call in (
        lambda m: m.update(y_true=truth, y_pred=prediction),
        lambda m: m.update(y_pred=prediction, y_true=truth),
        lambda m: m.update(preds=prediction, target=truth),
        lambda m: m.update(target=truth, preds=prediction),
    ):
        metric = make()
        call(metric)
        assert same_state(metric, reference)


def test_regression_update_takes_sample_weight_with_either_names():
    truth, prediction = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.5, 2.0, 3.0])
    weights = torch.tensor([1.0, 2.0, 0.5])
    reference = fm.R2Score()
    reference.update(truth, prediction, weights)
    for kwargs in (
        dict(y_true=truth, y_pred=prediction, sample_weight=weights),
        dict(preds=prediction, target=truth, sample_weight=weights),
    ):
        metric = fm.R2Score()
        metric.update(**kwargs)
        assert same_state(metric, reference)


@pytest.mark.parametrize("make", [ALL[0], ALL[8]])
def test_update_refuses_mixed_missing_and_repeated_names(make):
    metric = make()
    t, p = asymmetric_batch(metric)
    for call, message in [
        (lambda: metric.update(t, target=t), "got y_true and also target: pass either"),
        (lambda: metric.update(y_true=t, preds=p), "got y_true and also preds"),
        (lambda: metric.update(t, p, preds=p), "got y_true and y_pred and also preds"),
        (lambda: metric.update(y_pred=p, target=t), "got y_pred and also target"),
        (lambda: metric.update(preds=p), "got preds= without target="),
        (lambda: metric.update(target=t), "got target= without preds="),
        (lambda: metric.update(t), f"missing y_pred; {ORDER}"),
        (lambda: metric.update(), "missing y_true and y_pred"),
        (lambda: metric.update(t, p, y_true=t), "multiple values for argument 'y_true'"),
        (lambda: metric.update(t, p, pred=p), "unexpected keyword argument 'pred'"),
    ]:
        with pytest.raises(TypeError, match=message):
            call()
    assert metric.state_dict()["updates"] == 0


def test_swapped_classification_inputs_are_refused_naming_the_order():
    labels = torch.tensor([0, 2, 1, 1])
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    for metric in (fm.ConfusionMatrix(3), fm.F1Score(3), fm.Accuracy(3)):
        # update(preds, target) as torchmetrics users write it: scores first.
        with pytest.raises(
            ValueError, match=rf"y_true: expected a 1-D array of class labels.*; {ORDER}"
        ):
            metric.update(logits, labels)
        with pytest.raises(ValueError, match=rf"y_true: expected integer class labels.*; {ORDER}"):
            metric.update(logits.softmax(1)[:, 1], labels)
        with pytest.raises(ValueError, match=rf"y_true: expected integer class labels.*; {ORDER}"):
            metric.update([0.0, 2.0, 1.0, 1.0], [0, 2, 1, 1])
        assert metric.state_dict()["updates"] == 0
    binary = fm.F1Score(2, average="binary")
    with pytest.raises(ValueError, match=rf"y_true: expected integer class labels.*; {ORDER}"):
        binary.update(torch.tensor([0.2, 0.9, 0.6]), torch.tensor([0, 1, 1]))


def test_order_hint_only_where_the_swap_is_detectable():
    metric = fm.F1Score(3)
    scores = torch.rand(4, 3)
    # Neither argument is labels: not a swap of the two.
    with pytest.raises(ValueError, match="y_true: expected a 1-D array") as refused:
        metric.update(scores, scores)
    assert "scikit-learn's order" not in str(refused.value)
    # Named by keyword: the names say which is which; the message uses them.
    with pytest.raises(ValueError, match="target: expected a 1-D array") as refused:
        metric.update(preds=torch.tensor([0, 1, 2, 1]), target=scores)
    assert "scikit-learn's order" not in str(refused.value)
    # Two label arrays in the wrong order cannot be detected (documented): the
    # confusion matrix comes out transposed.
    t, p = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1])
    right, wrong = fm.ConfusionMatrix(3), fm.ConfusionMatrix(3)
    right.update(t, p)
    wrong.update(p, t)
    assert torch.equal(wrong.compute(), right.compute().T)


def test_errors_name_torchmetrics_arguments():
    with pytest.raises(ValueError, match="target and preds have different lengths: 2 and 3"):
        fm.F1Score(3).update(preds=[0, 1, 2], target=[0, 1])
    with pytest.raises(ValueError, match=r"target\[1\] = 5 is not a class label"):
        fm.ConfusionMatrix(3).update(preds=[0, 1], target=[0, 5])
    with pytest.raises(ValueError, match=r"preds\[0\] = -1 is not a class label"):
        fm.ConfusionMatrix(3).update(preds=[-1, 1], target=[0, 1])
    with pytest.raises(ValueError, match="preds: scores have 4 classes"):
        fm.F1Score(3).update(preds=torch.rand(2, 4), target=[0, 1])
    with pytest.raises(ValueError, match="target: expected integer class labels"):
        fm.F1Score(3).update(preds=[0, 1], target=[0.0, 1.0])
    with pytest.raises(ValueError, match="target and preds have different shapes"):
        fm.R2Score(2).update(preds=np.zeros((3, 2)), target=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="preds: expected numbers"):
        fm.MeanSquaredError().update(preds=["a"], target=[1.0])


def test_r2_refuses_a_model_output_as_y_true():
    """R^2 is the one order-sensitive regression metric; a y_true that requires grad
    beside a y_pred that does not is a model output passed first."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(8, generator=gen)
    out = (y + 0.3 * torch.randn(8, generator=gen)).requires_grad_()
    r2 = fm.R2Score()
    with pytest.raises(ValueError, match=rf"y_true requires grad and y_pred does not.*{ORDER}"):
        r2.update(out, y)
    with pytest.raises(ValueError, match="y_true requires grad"):
        r2.update(y_true=out, y_pred=y)
    assert r2.state_dict()["updates"] == 0
    r2.update(preds=out, target=y)
    right = fm.R2Score()
    right.update(y, out.detach())
    assert same_state(r2, right)
    both = fm.R2Score()
    both.update(out, out * 2)  # both require grad: nothing to tell
    # MSE and MAE are symmetric: either order gives the same value, and is accepted.
    for cls in (fm.MeanSquaredError, fm.MeanAbsoluteError):
        a, b = cls(), cls()
        a.update(out, y)
        b.update(y, out)
        assert float(a.compute()) == pytest.approx(float(b.compute()), rel=1e-15)


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


# -- metrics sent to other processes ---------------------------------------------------

# Metrics built before torch.multiprocessing starts workers (as under Lightning's
# ddp_spawn) travel through torch's ForkingPickler, which sends tensors as handles to
# shared memory. Each copy must own its state.


@pytest.fixture(params=mp.get_all_sharing_strategies())
def sharing_strategy(request):
    before = mp.get_sharing_strategy()
    mp.set_sharing_strategy(request.param)
    yield request.param
    mp.set_sharing_strategy(before)


def _metric_family():
    """A classification and a regression pair, each sharing one state, with data."""
    cm = fm.ConfusionMatrix(3)
    f1 = fm.F1Score(3, average="macro", share_state_with=cm)
    r2 = fm.R2Score()
    mse = fm.MeanSquaredError(share_state_with=r2)
    cm.update([0, 1, 2, 2], [0, 2, 2, 1])
    r2.update([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    return [cm, f1, r2, mse]


def test_forking_pickle_gives_each_copy_its_own_state(sharing_strategy):
    family = _metric_family()
    snapshot = [m.state_dict() for m in family]
    sent = bytes(ForkingPickler.dumps(family))  # how torch.multiprocessing sends arguments
    family[0].update([1], [1])  # after sending: must not reach the copies
    family[2].update([5.0], [4.0])
    after = [m.state_dict() for m in family]
    # A file-descriptor handle can be received once; under "file_system" the same
    # pickle can be loaded twice (two receivers), and the two must not share either.
    loads = 2 if sharing_strategy == "file_system" else 1
    copies = [pickle.loads(sent) for _ in range(loads)]
    for cm, f1, r2, mse in copies:
        assert f1._state is cm._state and mse._state is r2._state  # sharing survives
        for metric, saved in zip((cm, f1, r2, mse), snapshot):
            assert same_state_dict(metric.state_dict(), saved)
    cm, _, r2, _ = copies[0]
    cm.update([2], [0])
    r2.update([7.0], [1.0])
    for metric, saved in zip(family, after):
        assert same_state_dict(metric.state_dict(), saved)  # the original is untouched
    for other in copies[1:]:
        for metric, saved in zip(other, snapshot):
            assert same_state_dict(metric.state_dict(), saved)  # the other copy too


def test_plain_pickle_and_deepcopy_keep_shared_state():
    """State's own pickling keeps what plain pickle and deepcopy always did: copies
    of their own, and one State for the metrics that shared one."""
    family = _metric_family()
    for copy_ in (pickle.loads(pickle.dumps(family)), copy.deepcopy(family)):
        cm, f1, r2, mse = copy_
        assert f1._state is cm._state and mse._state is r2._state
        cm.update([1], [1])
        assert int(f1._state.tensors["counts"].sum()) == 5
        assert int(family[0].compute().sum()) == 4


_SPAWN_TIMEOUT_S = 90


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned_rank(rank, port, cm, f1, r2):
    """One of two workers that received metrics built in the parent."""
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    warnings.simplefilter("error")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=_SPAWN_TIMEOUT_S),
    )
    try:
        t, p, y, yp = _spawn_data()
        part, rpart = _spawn_part(rank, len(t)), _spawn_part(rank, len(y))
        assert f1._state is cm._state
        cm.update(t[part], p[part])
        r2.update(y[rpart], yp[rpart])
        dist.barrier()  # both ranks have counted: a shared tensor would now hold both
        local = skm.confusion_matrix(t[part], p[part], labels=range(3))
        np.testing.assert_array_equal(cm.compute().numpy(), local)
        assert float(r2.state_dict()["count"]) == len(y[rpart])
        dist.barrier()  # both have checked before either syncs
        cm.sync()
        # sync from compiled code: one opaque call (a traced all_gather fails).
        torch.compile(lambda metric: metric.sync(), backend="eager")(r2)
        np.testing.assert_array_equal(
            cm.compute().numpy(), skm.confusion_matrix(t, p, labels=range(3))
        )
        assert float(f1.compute()) == pytest.approx(skm.f1_score(t, p, average="macro"), rel=1e-12)
        assert float(r2.compute()) == pytest.approx(skm.r2_score(y, yp), rel=1e-10)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn_data():
    t, p = data(12, n=199, c=3, absent=())
    rng = np.random.default_rng(13)
    y = 10.0 + rng.normal(size=101)
    return t, p, y, y + rng.normal(size=101)


def _spawn_part(rank, n):
    return slice(rank * n // 2, (rank + 1) * n // 2)


def test_metrics_built_before_spawn_count_per_process():
    """Issue 13's repro: metrics built in the parent, sent to two spawned gloo ranks.
    Each rank counts only its own samples, sync() gives the global total once, and
    the parent's metrics stay as they were."""
    cm = fm.ConfusionMatrix(3)
    f1 = fm.F1Score(3, average="macro", share_state_with=cm)
    r2 = fm.R2Score()
    context = mp.start_processes(
        _spawned_rank,
        args=(_free_port(), cm, f1, r2),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + _SPAWN_TIMEOUT_S
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the spawned ranks did not finish within {_SPAWN_TIMEOUT_S} s")
    assert int(cm.compute().sum()) == 0
    assert r2.state_dict()["updates"] == 0 and float(r2.state_dict()["count"]) == 0
