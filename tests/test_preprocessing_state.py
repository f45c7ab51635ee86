"""Checkpoints and processes: state_dict round trips (through torch.save and
torch.load(weights_only=True)) resume a stream bit for bit; sync() over 2 gloo ranks gives
every rank the same statistics, equal to one process fitting all the data.

Tolerance of the 2-rank sync against one process: rtol 1e-12 (the merge order differs;
measured 5.2e-15 on these data); the ranks agree bit for bit."""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np
import pytest
import sklearn.preprocessing as skp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fusedoptim.preprocessing import MinMaxScaler, StandardScaler

from scaler_reference import as_numpy, assert_close_recorded, batches, data

ATTRIBUTES = {
    StandardScaler: ("mean_", "var_", "scale_", "n_samples_seen_"),
    MinMaxScaler: ("data_min_", "data_max_", "data_range_", "scale_", "min_", "n_samples_seen_"),
}


def round_trip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same_attributes(a, b):
    for name in ATTRIBUTES[type(a)]:
        np.testing.assert_array_equal(as_numpy(getattr(a, name)), as_numpy(getattr(b, name)))


@pytest.mark.parametrize("cls", [StandardScaler, MinMaxScaler])
def test_resume_from_state_dict_mid_stream(cls):
    x = 1e8 + data(3000, 4, seed=1, nan=0.05)
    sizes = [1000, 999, 1001]
    uninterrupted = cls()
    for part in batches(x, sizes):
        uninterrupted.partial_fit(part)
    first = cls().partial_fit(x[:1000])
    resumed = cls()
    resumed.load_state_dict(round_trip(first.state_dict()))
    assert_same_attributes(resumed, first)
    for part in batches(x[1000:], sizes[1:]):
        resumed.partial_fit(part)
    assert_same_attributes(resumed, uninterrupted)
    np.testing.assert_array_equal(resumed.transform(x), uninterrupted.transform(x))


def test_unfitted_state_dict_round_trips():
    fitted = StandardScaler().fit(np.ones((3, 2)))
    fitted.load_state_dict(round_trip(StandardScaler().state_dict()))
    assert not hasattr(fitted, "mean_")


def test_torch_kind_is_kept():
    scaler = StandardScaler().fit(torch.randn(10, 2))
    other = StandardScaler()
    other.load_state_dict(scaler.state_dict())
    assert isinstance(other.mean_, torch.Tensor)


def test_bad_state_dicts_are_refused():
    good = StandardScaler().fit(np.ones((3, 2))).state_dict()
    scaler = StandardScaler().fit(data(5, 2))
    before = scaler.mean_.copy()
    bad = [
        ({k: v for k, v in good.items() if k != "shift"}, "expected the keys"),
        (MinMaxScaler().fit(np.ones((3, 2))).state_dict(), "holds a MinMaxScaler"),
        (good | {"stats": good["stats"].float()}, r"state_dict\['stats'\]: expected a float64"),
        (good | {"stats": good["stats"][:1]}, r"state_dict\['stats'\]: expected shape"),
        (good | {"dtype": "int8"}, r"state_dict\['dtype'\]: expected one of"),
        (good | {"kind": "jax"}, r"state_dict\['kind'\]"),
        (good | {"n_rows": -1}, r"state_dict\['n_rows'\]"),
        (
            StandardScaler(with_mean=False, with_std=False).fit(np.ones((3, 2))).state_dict(),
            "hold no mean or variance",
        ),
    ]
    for state, match in bad:
        with pytest.raises(ValueError, match=match):
            scaler.load_state_dict(state)
        np.testing.assert_array_equal(scaler.mean_, before)


def test_sync_is_a_no_op_without_distributed():
    scaler = StandardScaler().fit(np.ones((3, 2)))
    assert scaler.sync() is scaler
    assert scaler.n_samples_seen_ == 3


# -- 2 gloo ranks (as in test_distributed.py and test_metrics_streaming.py) -----------

ROWS = 4001


def rank_batches(rank):
    """Rank 0 fits the first 2600 rows in three batches, rank 1 the rest in two."""
    x = 5e7 + data(ROWS, 5, seed=7, nan=0.03)
    w = np.random.default_rng(7).uniform(0, 2, size=ROWS)
    cuts = [0, 700, 1999, 2600] if rank == 0 else [2600, 3000, ROWS]
    return [(x[a:b], w[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def _sync_worker(rank, world, init_file, results):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        standard = StandardScaler()
        weighted = StandardScaler()
        minmax = MinMaxScaler()
        idle = StandardScaler()  # fitted on rank 0 only
        for part, w in rank_batches(rank):
            standard.partial_fit(part)
            weighted.partial_fit(torch.from_numpy(part), sample_weight=w)
            minmax.partial_fit(part.astype(np.float32))
            if rank == 0:
                idle.partial_fit(part)
        for scaler in (standard, weighted, minmax, idle):
            scaler.sync()
        mismatch = StandardScaler().fit(np.ones((2, 3 + rank)))
        try:
            mismatch.sync()
            refused = ""
        except ValueError as error:
            refused = str(error)
        results[rank] = {
            "standard": [as_numpy(getattr(standard, n)) for n in ATTRIBUTES[StandardScaler]],
            "weighted": [as_numpy(getattr(weighted, n)) for n in ATTRIBUTES[StandardScaler]],
            "minmax": [as_numpy(getattr(minmax, n)) for n in ATTRIBUTES[MinMaxScaler]],
            "idle": [as_numpy(getattr(idle, n)) for n in ATTRIBUTES[StandardScaler]],
            "weighted_is_torch": isinstance(weighted.mean_, torch.Tensor),
            "refused": refused,
        }
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
def test_sync_two_processes():
    with tempfile.TemporaryDirectory() as tmp:
        manager = mp.Manager()
        results = manager.dict()
        mp.spawn(_sync_worker, args=(2, os.path.join(tmp, "init"), results), nprocs=2)
        got = dict(results)
    for key in ("standard", "weighted", "minmax", "idle"):
        for a, b in zip(got[0][key], got[1][key]):
            np.testing.assert_array_equal(a, b)  # every rank holds the same bits
    assert got[0]["weighted_is_torch"]
    assert "different feature counts (rank 0: 3, rank 1: 4)" in got[0]["refused"]
    assert got[0]["refused"] == got[1]["refused"]

    parts = rank_batches(0) + rank_batches(1)
    x = np.concatenate([p for p, _ in parts])
    w = np.concatenate([w for _, w in parts])
    expected = {
        "standard": skp.StandardScaler().fit(x),
        "weighted": skp.StandardScaler().fit(x, sample_weight=w),
        "idle": skp.StandardScaler().fit(np.concatenate([p for p, _ in rank_batches(0)])),
    }
    for key, sk in expected.items():
        for name, value in zip(ATTRIBUTES[StandardScaler], got[0][key]):
            assert_close_recorded(f"sync {name}", value, getattr(sk, name), rtol=1e-12)
    sk = skp.MinMaxScaler().fit(x.astype(np.float32))
    for name, value in zip(ATTRIBUTES[MinMaxScaler], got[0]["minmax"]):
        np.testing.assert_array_equal(value, getattr(sk, name))
