"""fusedoptim.functional on torch tensors and numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim.adam import adam as torch_adam
from torch.optim.sgd import sgd as torch_sgd

import fusedoptim
from fusedoptim import functional as F


@pytest.mark.parametrize("kind", ["torch", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_functional_matches_torch_functional(kind, dtype):
    rng = np.random.default_rng(0)
    sizes = (1, 7, 1023)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ref = [torch.from_numpy(p.copy()) for p in params]
    ref_m = [torch.zeros_like(p) for p in ref]
    ref_v = [torch.zeros_like(p) for p in ref]
    ref_vmax = [torch.zeros_like(p) for p in ref]
    ref_steps = [torch.tensor(0.0) for _ in ref]
    wrap = torch.from_numpy if kind == "torch" else np.asarray
    ours = [wrap(p.copy()) for p in params]
    m = [wrap(np.zeros_like(p)) for p in params]
    v = [wrap(np.zeros_like(p)) for p in params]
    vmax = [wrap(np.zeros_like(p)) for p in params]
    steps = [wrap(np.zeros((), dtype=np.float32)) for _ in params]
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.99, weight_decay=0.1, eps=1e-8, maximize=False)
    for _ in range(20):
        grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
        F.adam(ours, [wrap(g) for g in grads], m, v, vmax, steps, amsgrad=True, **hyper)
        torch_adam(
            ref,
            [torch.from_numpy(g) for g in grads],
            ref_m,
            ref_v,
            ref_vmax,
            ref_steps,
            amsgrad=True,
            foreach=False,
            **hyper,
        )
    tol = 2e-6 if dtype == "float32" else 1e-14
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=0, atol=tol)
    assert float(steps[0]) == 20


def test_sgd_functional_creates_buffers_in_place():
    params = [torch.ones(5), torch.ones(3)]
    buffers = [None, None]
    F.sgd(params, [torch.ones(5), torch.ones(3)], buffers, lr=0.1, momentum=0.9)
    assert all(isinstance(b, torch.Tensor) for b in buffers)
    ref_params = [torch.ones(5), torch.ones(3)]
    ref_buffers = [None, None]
    torch_sgd(
        ref_params,
        [torch.ones(5), torch.ones(3)],
        ref_buffers,
        lr=0.1,
        momentum=0.9,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        maximize=False,
        foreach=False,
    )
    for a, b in zip(params + buffers, ref_params + ref_buffers):
        torch.testing.assert_close(a, b)


def test_functional_adamw_numpy_float16():
    p = np.linspace(-1, 1, 101, dtype=np.float16)
    g = np.full(101, 0.5, dtype=np.float16)
    m, v, s = np.zeros_like(p), np.zeros_like(p), np.zeros((), np.float32)
    expected = torch.from_numpy(p.astype(np.float32)).clone()
    F.adamw([p], [g], [m], [v], [], [s], lr=1e-2)
    # step 1 of AdamW: p*(1 - lr*wd) - lr * sign(g) (bias-corrected m/sqrt(v) = 1)
    expected = expected * (1 - 1e-2 * 1e-2) - 1e-2 * 0.5 / (0.5 + 1e-8)
    np.testing.assert_allclose(p.astype(np.float32), expected.to(torch.float16).float().numpy())


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda p, g: F.sgd([p], [g, g], [None], lr=0.1), ValueError, "grads has 2 entries"),
        (
            lambda p, g: F.sgd([p], [g.astype(np.float32)], [None], lr=0.1),
            TypeError,
            "grad has dtype float32",
        ),
        (lambda p, g: F.sgd([p], [g[:3]], [None], lr=0.1), ValueError, "grad has shape"),
        (
            lambda p, g: F.sgd([p], [torch.from_numpy(g)], [None], lr=0.1),
            TypeError,
            "must be a numpy.ndarray",
        ),
        (lambda p, g: F.sgd([p], [g], [None], lr=-1.0), ValueError, "Invalid lr value"),
        (
            lambda p, g: F.adam([p], [g], [g.copy()], [g.copy()], [], [np.zeros(2)]),
            ValueError,
            "step counter",
        ),
        (
            lambda p, g: F.sgd([p, p[1:3]], [g, g[:2]], [None, None], lr=0.1),
            ValueError,
            r"params\[1\] shares memory with params\[0\]",
        ),
        (
            lambda p, g: F.adam([p], [g], [p], [g.copy()], [], [np.zeros((), np.float32)]),
            ValueError,
            r"exp_avgs\[0\] shares memory with params\[0\]",
        ),
        (
            lambda p, g: F.adam(
                [p[:2], p[2:]],
                [g[:2], g[2:]],
                [np.zeros(2), np.zeros(2)],
                [np.zeros(2), np.zeros(2)],
                [],
                [np.zeros((), np.float32)] * 2,
            ),
            ValueError,
            r"steps\[1\] shares memory with steps\[0\]",
        ),
    ],
)
def test_functional_refusals_write_nothing(call, error, message):
    p = np.arange(4, dtype=np.float64)
    g = np.ones(4, dtype=np.float64)
    with pytest.raises(error, match=message):
        call(p, g)
    np.testing.assert_array_equal(p, np.arange(4, dtype=np.float64))


def test_readonly_numpy_param_refused():
    p = np.ones(4)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        F.sgd([p], [np.ones(4)], [None], lr=0.1)


def test_num_threads_argument_and_setting():
    with pytest.raises(ValueError, match="num_threads"):
        fusedoptim.set_num_threads(0)
    p = [torch.ones(100_000)]
    F.sgd(p, [torch.ones(100_000)], [None], lr=0.5, num_threads=3)
    assert torch.equal(p[0], torch.full((100_000,), 0.5))


def test_sgd_functional_gives_new_buffers_only_after_the_step(monkeypatch):
    """A call refused after its checks leaves the caller's buffer list as it was."""
    p, g = torch.ones(4), torch.ones(4)
    buffers = [None]

    def failing(*args, **kwargs):
        raise RuntimeError("launch failed")

    monkeypatch.setattr(fusedoptim._backend, "sgd_step", failing)
    with pytest.raises(RuntimeError, match="launch failed"):
        F.sgd([p], [g], buffers, lr=0.1, momentum=0.9)
    assert buffers == [None]
