"""The 8-bit optimizers on CUDA: the same bits as the CPU path (params, codes,
absmax) over many steps, every option and param dtype, many tensors per
launch, odd sizes and block sizes; the conversions between precisions on the
device. Skipped without a CUDA device (see tests/cuda_marks.py for
FUSEDOPTIM_REQUIRE_CUDA). Tolerance: none (bit-exact with the CPU).
"""

from __future__ import annotations

import pytest
import torch
from cuda_marks import CUDA_MODULE

import fusedoptim
from fusedoptim import _backend

pytestmark = CUDA_MODULE

SIZES = (4096, 4097, 65537, 278011, 10)  # the last keeps float state
CONFIGS = [
    ("AdamW8bit", dict(lr=1e-2)),
    ("AdamW8bit", dict(lr=1e-2, amsgrad=True, maximize=True, l1=1e-3)),
    ("Adam8bit", dict(lr=1e-2, weight_decay=0.1)),
    ("SGD8bit", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD8bit", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD8bit", dict(lr=0.1)),
]


def _ids(config):
    name, kwargs = config
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("block", [32, 256, 4096])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_cuda_equals_cpu_bit_for_bit(config, dtype, block):
    name, kwargs = config
    cls = getattr(fusedoptim, name)
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(n, generator=gen).to(dtype) for n in SIZES]
    cpu = [torch.nn.Parameter(v.clone()) for v in values]
    gpu = [torch.nn.Parameter(v.cuda()) for v in values]
    a = cls(cpu, block_size=block, **kwargs)
    b = cls(gpu, block_size=block, **kwargs)
    for _ in range(6):
        for p, q in zip(cpu, gpu):
            g = torch.randn(p.shape, generator=gen).to(dtype)
            p.grad, q.grad = g, g.cuda()
        a.step()
        b.step()
    torch.cuda.synchronize()
    for p, q in zip(cpu, gpu):
        assert torch.equal(p.detach(), q.detach().cpu())
        for key, value in a.state[p].items():
            assert torch.equal(value, b.state[q][key].cpu()), key


@pytest.mark.parametrize("kind", [_backend.SIGNED_MOMENT, _backend.SECOND_MOMENT])
def test_conversions_on_the_device_equal_the_cpu(kind):
    gen = torch.Generator().manual_seed(1)
    values = torch.randn(100_003, generator=gen) * torch.exp(torch.randn(100_003, generator=gen))
    if kind == _backend.SECOND_MOMENT:
        values = values * values
    out = {}
    for device in ("cpu", "cuda"):
        x = values.to(device)
        codes = torch.empty(x.numel(), dtype=torch.uint8, device=device)
        absmax = torch.empty(-(-x.numel() // 256), device=device)
        _backend.quantize_moment(kind, x, codes, absmax, 256)
        decoded = torch.empty_like(x)
        _backend.dequantize_moment(kind, codes, absmax, decoded, 256)
        out[device] = (codes.cpu(), absmax.cpu(), decoded.cpu())
    for cpu_value, cuda_value in zip(out["cpu"], out["cuda"]):
        assert torch.equal(cpu_value, cuda_value)


def test_state_dict_moves_between_devices_and_precisions():
    gen = torch.Generator().manual_seed(2)
    p = torch.nn.Parameter(torch.randn(70000, generator=gen).cuda())
    opt = fusedoptim.AdamW8bit([p], lr=1e-2)
    for _ in range(3):
        p.grad = torch.randn(p.shape, generator=gen).cuda()
        opt.step()
    saved = opt.state_dict()
    cpu_param = torch.nn.Parameter(p.detach().cpu())
    on_cpu = fusedoptim.AdamW8bit([cpu_param], lr=1e-2)
    on_cpu.load_state_dict(saved)
    assert on_cpu.state[cpu_param]["exp_avg_codes"].device.type == "cpu"
    floating = fusedoptim.AdamW([p], lr=1e-2)
    floating.load_state_dict(saved)
    assert floating.state[p]["exp_avg"].is_cuda
    g = torch.randn(p.shape, generator=gen)
    cpu_param.grad, p.grad = g, g.cuda()
    on_cpu.step()
    floating.step()
    torch.testing.assert_close(cpu_param, p.detach().cpu(), rtol=0, atol=1e-3)
