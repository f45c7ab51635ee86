"""CUDA tensors through the scalers: statistics equal to the CPU kernels' (rtol 1e-13:
another summation order; the same torch-ops path run on the CPU measured 3.8e-15 in
test_preprocessing_kernels.py), transforms identical to the CPU's, results on the input's
device, and transform() never waits for the GPU. Skipped without a CUDA device (the
development machine has none: these have not run there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusedoptim.preprocessing import MinMaxScaler, StandardScaler

from scaler_reference import as_numpy, assert_close_recorded, data

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standard_scaler_on_cuda_matches_cpu(dtype):
    x = torch.from_numpy(1e4 + data(100_003, 7, seed=1, nan=0.03)).to(dtype)
    w = torch.rand(x.shape[0], dtype=torch.float64)
    cpu, gpu = StandardScaler(), StandardScaler()
    for part, wp in zip(x.split(30_000), w.split(30_000)):
        cpu.partial_fit(part, sample_weight=wp)
        gpu.partial_fit(part.cuda(), sample_weight=wp.cuda())
    for name in ("mean_", "var_", "scale_", "n_samples_seen_"):
        value = getattr(gpu, name)
        assert value.device.type == "cuda", name
        assert_close_recorded(f"cuda {name}", value, getattr(cpu, name), rtol=1e-13)
    xc = x.cuda()
    gpu.load_state_dict(cpu.state_dict())  # the same statistics: identical transforms
    gpu.inverse_transform(gpu.transform(xc[:10]))  # uploads the parameters once
    with no_sync():
        out = gpu.transform(xc)
        back = gpu.inverse_transform(out)
        gpu.transform(xc, copy=False)
    expected = cpu.transform(x)
    assert out.device.type == "cuda" and out.dtype == dtype
    assert torch.equal(out.cpu().nan_to_num(7.0), expected.nan_to_num(7.0))
    assert torch.equal(xc.cpu().nan_to_num(7.0), expected.nan_to_num(7.0))
    assert torch.equal(back.cpu().nan_to_num(7.0), cpu.inverse_transform(expected).nan_to_num(7.0))


def test_minmax_scaler_on_cuda_matches_cpu():
    x = torch.from_numpy(data(50_001, 5, np.float32, seed=2, nan=0.05))
    cpu = MinMaxScaler(feature_range=(-1, 1), clip=True).fit(x)
    gpu = MinMaxScaler(feature_range=(-1, 1), clip=True).fit(x.cuda())
    for name in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name
    held_out = x * 3
    gpu.transform(held_out[:2].cuda())
    with no_sync():
        out = gpu.transform(held_out.cuda())
    assert torch.equal(out.cpu().nan_to_num(7.0), cpu.transform(held_out).nan_to_num(7.0))


def test_cuda_fit_refuses_inf_and_keeps_statistics():
    x = torch.from_numpy(data(1000, 3, seed=3)).cuda()
    scaler = StandardScaler().fit(x)
    before = as_numpy(scaler.mean_).copy()
    bad = x.clone()
    bad[500, 1] = torch.inf
    with pytest.raises(ValueError, match=r"X contains infinity \(row 500, feature 1\)"):
        scaler.partial_fit(bad)
    np.testing.assert_array_equal(as_numpy(scaler.mean_), before)
