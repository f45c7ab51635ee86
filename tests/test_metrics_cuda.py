"""CUDA tensors through the metrics and EarlyStopping: results equal the CPU path, and
update() never waits for the GPU (torch's sync debug mode turns a sync into an error).
Skipped without a CUDA device."""

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

import fusedoptim.metrics as fm
from fusedoptim import EarlyStopping

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


class no_sync:
    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")


def labels(seed, n=100_003, c=10):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, c, (n,), generator=g)
    p = torch.where(torch.rand(n, generator=g) < 0.5, t, torch.randint(0, c, (n,), generator=g))
    return t, p


def test_stateful_update_has_no_sync_and_matches_cpu():
    t, p = labels(0)
    tc, pc = t.cuda(), p.cuda()
    cm = fm.ConfusionMatrix(10).to("cuda")
    f1 = fm.F1Score(10, average="macro", share_state_with=cm)
    r2 = fm.R2Score().to("cuda")
    scores = torch.randn(t.shape[0], 10, device="cuda")
    with no_sync():
        for a in range(0, t.shape[0], 20_000):
            cm.update(tc[a : a + 20_000], pc[a : a + 20_000])
            r2.update(tc[a : a + 20_000].double(), pc[a : a + 20_000].double())
        cm.update(tc, scores)
    want = skm.confusion_matrix(
        np.concatenate([t.numpy(), t.numpy()]),
        np.concatenate([p.numpy(), scores.argmax(1).cpu().numpy()]),
        labels=range(10),
    )
    assert np.array_equal(cm.compute().cpu().numpy(), want)
    assert float(f1.compute()) > 0
    assert float(r2.compute()) == pytest.approx(skm.r2_score(t.numpy(), p.numpy()), rel=1e-10)


def test_invalid_labels_are_reported_at_compute():
    m = fm.Accuracy(3).to("cuda")
    with no_sync():
        m.update(torch.tensor([0, 5], device="cuda"), torch.tensor([0, 1], device="cuda"))
        m.update(torch.tensor([0, 1], device="cuda"), torch.tensor([0.2, 1.5], device="cuda"))
    with pytest.raises(ValueError, match="invalid"):
        m.compute()


def test_functional_on_cuda_matches_sklearn():
    t, p = labels(1, n=5_001)
    ours = fm.f1_score(t.cuda(), p.cuda(), average=None, zero_division=0)
    assert ours.device.type == "cuda"
    np.testing.assert_allclose(
        ours.cpu().numpy(), skm.f1_score(t, p, average=None, zero_division=0), rtol=1e-12
    )
    cm = fm.confusion_matrix(t.cuda(), p.cuda())
    assert np.array_equal(cm.cpu().numpy(), skm.confusion_matrix(t, p))
    with pytest.raises(ValueError, match="outside"):
        fm.f1_score(t[:2].cuda(), torch.tensor([0.1, 2.0], device="cuda"))


def test_early_stopping_reads_cuda_values_only_when_needed():
    s = EarlyStopping(patience=1, start_from_epoch=2, restore_best_weights=True)
    model = torch.nn.Linear(4, 1).cuda()
    loss = torch.tensor(1.0, device="cuda")
    with no_sync():
        s.step(loss, model=model)
        s.step(loss, model=model)
    assert not s.step(loss, model=model)
    assert s.best == 1.0 and s.best_weights["weight"].device.type == "cuda"
