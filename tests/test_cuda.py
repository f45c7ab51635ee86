"""The optimizers on CUDA: parity with torch.optim, bit-for-bit agreement with
the fusedoptim CPU path, state_dict moves between devices, launches over many
tensors, streams and placement errors.

Every test needs a CUDA device and a fusedoptim built with CUDA; without a
device they are skipped. With a device but a CPU-only build they are skipped
too, unless FUSEDOPTIM_REQUIRE_CUDA=1 (set by benchmarks/gpu_check.sh), which
turns a missing CUDA build into a failure.
"""

from __future__ import annotations

import copy

import pytest
import torch
from cuda_marks import CUDA_MODULE

import fusedoptim
from fusedoptim import _C

DEVICE = "cuda"
pytestmark = CUDA_MODULE

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Tolerances against torch.optim (foreach=False) on CUDA, after STEPS[dtype]
# steps: a few ulp of the dtype. torch rounds every intermediate tensor op to
# the param dtype (and its CUDA kernels may contract a*b+c into fma);
# fusedoptim rounds once per element, computing half types in fp32. Measured
# on the CPU with the same kernels, as the atol each needs at these rtols:
# fp32 6.8e-7, fp64 7.5e-16, fp16 3.4e-3, bf16 2.4e-2.
TOLERANCES = {
    torch.float32: dict(atol=5e-6, rtol=1e-5),
    torch.float64: dict(atol=1e-14, rtol=1e-12),
    torch.float16: dict(atol=6e-3, rtol=2**-8),
    torch.bfloat16: dict(atol=4e-2, rtol=2**-5),
}
STEPS = {torch.float32: 20, torch.float64: 20, torch.float16: 6, torch.bfloat16: 6}

# Odd sizes hit the vector tails; 65537 straddles a chunk; the 2-d shape and
# the unaligned view (storage offset of one element: the scalar kernel path)
# sit in the same fused call as the aligned tensors.
SIZES = [278011, 1, 17, 65537, (3, 5)]
UNALIGNED = 1001

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, maximize=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)),
]
# The same configs with the fused L1 step (not in torch.optim: compared with
# the CPU path only).
L1_CONFIGS = [(name, {**config, "l1": 1e-2}) for name, config in CONFIGS]


def config_id(entry):
    name, config = entry
    return name + "-" + "-".join(f"{k}={v}" for k, v in config.items())


def initial_values(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = [torch.randn(size, generator=gen).to(dtype) for size in SIZES]
    values.append(torch.randn(UNALIGNED, generator=gen).to(dtype))
    return values


def gradients(dtype, steps, seed=1, away_from_zero=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [*SIZES, UNALIGNED]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(steps)]
    if away_from_zero:
        grads = [[g.sign() * (g.abs() + 0.5) for g in step] for step in grads]
    return [[g.to(dtype) for g in step] for step in grads]


def make_params(values, device):
    """Leaf params on `device`; the last one is a view one element into its storage."""
    params = [torch.nn.Parameter(v.to(device).clone()) for v in values[:-1]]
    last = values[-1]
    storage = torch.empty(last.numel() + 1, dtype=last.dtype, device=device)
    storage[1:].copy_(last.to(device))
    params.append(torch.nn.Parameter(storage[1:]))
    return params


def run_steps(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.to(p.device).clone()
        optimizer.step()


def train(factory, config, values, grads, device):
    params = make_params(values, device)
    optimizer = factory(params, **config)
    run_steps(optimizer, params, grads)
    return params, optimizer


def fused(name):
    return getattr(fusedoptim, name)


def reference(name):
    cls = getattr(torch.optim, name)
    return lambda params, **config: cls(params, foreach=False, **config)


def as_bits(t):
    bits = {8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]
    return t.contiguous().view(bits)


def assert_bitwise_equal(a, b, what):
    # NaN payloads may differ (x86 makes negative default NaNs, CUDA positive
    # ones); every other value must match to the bit.
    assert a.dtype == b.dtype and a.shape == b.shape, what
    a, b = a.detach().cpu(), b.detach().cpu()
    both_nan = a.isnan() & b.isnan()
    mismatches = ((as_bits(a) != as_bits(b)) & ~both_nan).sum().item()
    assert mismatches == 0, f"{what}: {mismatches} of {a.numel()} elements differ"


def assert_same_state(opt_a, params_a, opt_b, params_b):
    for i, (pa, pb) in enumerate(zip(params_a, params_b)):
        assert_bitwise_equal(pa, pb, f"param {i}")
        state_a, state_b = opt_a.state[pa], opt_b.state[pb]
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            assert_bitwise_equal(state_a[key], state_b[key], f"state[{i}][{key!r}]")


def test_build_info_reports_the_cuda_build():
    info = _C.build_info()
    assert info["cuda_compiled"] is True
    assert info["cuda_architectures"]
    assert info["cuda_runtime_version"].count(".") == 1
    assert info["cuda_driver_version"] is not None
    assert info["cuda_device_count"] == torch.cuda.device_count()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", CONFIGS, ids=config_id)
def test_matches_torch_optim_on_cuda(entry, dtype):
    name, config = entry
    half = dtype in (torch.float16, torch.bfloat16)
    if dtype == torch.float16 and name != "SGD":
        # torch's fp16 Adam rounds eps=1e-8 to 0 and divides by zero wherever
        # exp_avg_sq underflows to 0.
        config = {**config, "eps": max(config.get("eps", 1e-8), 1e-4)}
    values = initial_values(dtype)
    # Half types: grads with |g| >= 0.5, so that exp_avg_sq stays a normal
    # number. Below that torch's Adam divides by a denormal rounded to a few
    # bits (its exp_avg_sq is stored and reused in the half type) where
    # fusedoptim uses the fp32 value, and the two disagree by design.
    grads = gradients(dtype, STEPS[dtype], away_from_zero=half)
    expected, _ = train(reference(name), config, values, grads, DEVICE)
    actual, _ = train(fused(name), config, values, grads, DEVICE)
    for i, (a, e) in enumerate(zip(actual, expected)):
        torch.testing.assert_close(a, e, **TOLERANCES[dtype], msg=lambda m, i=i: f"param {i}: {m}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", CONFIGS + L1_CONFIGS, ids=config_id)
def test_cuda_matches_the_cpu_path_bit_for_bit(entry, dtype):
    # Same ops/ functions on both sides, no fma contraction on either
    # ([note: CUDA floating point] in cmake/cuda.cmake), IEEE division and
    # square root: params and every state tensor must agree to the bit.
    name, config = entry
    values = initial_values(dtype)
    grads = gradients(dtype, STEPS[dtype])
    cpu_params, cpu_opt = train(fused(name), config, values, grads, "cpu")
    gpu_params, gpu_opt = train(fused(name), config, values, grads, DEVICE)
    assert_same_state(cpu_opt, cpu_params, gpu_opt, gpu_params)


@pytest.mark.parametrize("entry", [CONFIGS[3], CONFIGS[6], L1_CONFIGS[9]], ids=config_id)
def test_state_dict_moves_between_devices(entry):
    name, config = entry
    dtype = torch.float32
    values = initial_values(dtype)
    grads = gradients(dtype, 9)

    # Three steps on CUDA, then the state continues on the CPU ...
    gpu_params, gpu_opt = train(fused(name), config, values, grads[:3], DEVICE)
    cpu_params = [torch.nn.Parameter(p.detach().cpu().clone()) for p in gpu_params]
    cpu_opt = fused(name)(cpu_params, **config)
    # A copy: torch's load_state_dict keeps CPU tensors (the step counters)
    # by reference, and both optimizers keep stepping.
    cpu_opt.load_state_dict(copy.deepcopy(gpu_opt.state_dict()))
    run_steps(gpu_opt, gpu_params, grads[3:6])
    run_steps(cpu_opt, cpu_params, grads[3:6])
    assert_same_state(cpu_opt, cpu_params, gpu_opt, gpu_params)

    # ... and back from the CPU to CUDA.
    back_params = [torch.nn.Parameter(p.detach().to(DEVICE).clone()) for p in cpu_params]
    back_opt = fused(name)(back_params, **config)
    back_opt.load_state_dict(copy.deepcopy(cpu_opt.state_dict()))
    for p in back_params:
        for key, value in back_opt.state[p].items():
            expected = "cpu" if key == "step" else DEVICE
            assert value.device.type == expected, key
    run_steps(cpu_opt, cpu_params, grads[6:])
    run_steps(back_opt, back_params, grads[6:])
    assert_same_state(cpu_opt, cpu_params, back_opt, back_params)


@pytest.mark.parametrize("torch_fused", [False, True])
def test_torch_cuda_state_dict_continues_in_fusedoptim(torch_fused):
    # torch.optim.Adam(fused=True) keeps `step` on the GPU; fusedoptim reads
    # it on the host, so loading must bring it back there.
    dtype = torch.float32
    config = dict(lr=1e-2, weight_decay=0.1)
    values = initial_values(dtype)
    grads = gradients(dtype, 8)
    torch_params = make_params(values, DEVICE)
    torch_opt = torch.optim.AdamW(torch_params, fused=torch_fused, **config)
    run_steps(torch_opt, torch_params, grads[:4])
    ours_params = [torch.nn.Parameter(p.detach().clone()) for p in torch_params]
    ours = fusedoptim.AdamW(ours_params, **config)
    ours.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    run_steps(torch_opt, torch_params, grads[4:])
    run_steps(ours, ours_params, grads[4:])
    for p in ours_params:
        assert float(ours.state[p]["step"]) == 8.0
    for a, e in zip(ours_params, torch_params):
        torch.testing.assert_close(a, e, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_many_tensors_need_several_launches_and_each_element_is_updated_once(dtype):
    # 1500 tensors exceed every launch table (at most 842 tensors per launch
    # for SGD). p = 0, g = 1, lr = 0.5 gives exactly -0.5 in every dtype: an
    # element updated twice would read -1, one skipped 0.
    sizes = [1 + (i * 37) % 300 for i in range(1500)] + [3 * 65536 + 5, 0]
    params = [torch.nn.Parameter(torch.zeros(n, dtype=dtype, device=DEVICE)) for n in sizes]
    for p in params:
        p.grad = torch.ones_like(p)
    fusedoptim.SGD(params, lr=0.5).step()
    for i, p in enumerate(params):
        assert bool((p == -0.5).all()), f"param {i} ({p.numel()} elements)"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_many_adam_tensors_match_the_cpu_path(dtype):
    # amsgrad: five streams, the smallest table (421 tensors with 32 KiB of
    # kernel arguments, 40 with 4 KiB), so 1200 tensors take several launches.
    gen = torch.Generator().manual_seed(3)
    sizes = [1 + (i * 53) % 700 for i in range(1200)]
    values = [torch.randn(n, generator=gen).to(dtype) for n in sizes]
    grads = [[torch.randn(n, generator=gen).to(dtype) for n in sizes] for _ in range(3)]
    config = dict(lr=1e-2, amsgrad=True, weight_decay=0.1)
    runs = []
    for device in ("cpu", DEVICE):
        params = [torch.nn.Parameter(v.to(device).clone()) for v in values]
        optimizer = fusedoptim.AdamW(params, **config)
        run_steps(optimizer, params, grads)
        runs.append((optimizer, params))
    assert_same_state(runs[0][0], runs[0][1], runs[1][0], runs[1][1])


def test_one_tensor_larger_than_a_launch():
    # 2048 chunks of 64K elements fill one launch; this tensor needs a second.
    n = 2048 * 65536 + 4099
    p = torch.nn.Parameter(torch.zeros(n, dtype=torch.float16, device=DEVICE))
    p.grad = torch.ones_like(p)
    optimizer = fusedoptim.SGD([p], lr=0.5, momentum=0.9)
    optimizer.step()
    assert bool((p == -0.5).all())
    assert bool((optimizer.state[p]["momentum_buffer"] == 1).all())


def test_empty_params_on_cuda():
    params = [torch.nn.Parameter(torch.zeros(n, device=DEVICE)) for n in (0, 5, 0)]
    for p in params:
        p.grad = torch.ones_like(p)
    fusedoptim.Adam(params, lr=0.1).step()
    assert params[1].abs().sum().item() > 0


def test_step_runs_on_the_current_stream():
    # The grad is written on a side stream after a long sleep there; a step
    # enqueued on any other stream would read the grad before it is written.
    p = torch.nn.Parameter(torch.zeros(1 << 20, device=DEVICE))
    p.grad = torch.zeros_like(p)
    optimizer = fusedoptim.SGD([p], lr=0.5)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(100_000_000)
        p.grad.fill_(1.0)
        optimizer.step()
    side.synchronize()
    assert bool((p == -0.5).all())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_params_on_another_device_than_the_current_one():
    values = initial_values(torch.float32)
    grads = gradients(torch.float32, 3)
    with torch.cuda.device(0):
        gpu_params, gpu_opt = train(fusedoptim.Adam, dict(lr=1e-2), values, grads, "cuda:1")
        assert torch.cuda.current_device() == 0
    cpu_params, cpu_opt = train(fusedoptim.Adam, dict(lr=1e-2), values, grads, "cpu")
    assert_same_state(cpu_opt, cpu_params, gpu_opt, gpu_params)


def _snapshot(optimizer, params):
    return [p.detach().clone() for p in params], [
        {k: v.clone() for k, v in optimizer.state[p].items()} for p in params
    ]


def _assert_unchanged(optimizer, params, snapshot):
    before_params, before_state = snapshot
    for p, before, state in zip(params, before_params, before_state):
        assert torch.equal(p.detach(), before)
        assert optimizer.state[p].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(optimizer.state[p][key], value), key


def test_one_group_on_two_devices_raises_before_writing():
    params = [
        torch.nn.Parameter(torch.ones(10, device=DEVICE)),
        torch.nn.Parameter(torch.ones(10)),
    ]
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer = fusedoptim.Adam(params, lr=0.1)
    snapshot = _snapshot(optimizer, params)
    with pytest.raises(RuntimeError, match="device"):
        optimizer.step()
    _assert_unchanged(optimizer, params, snapshot)


def test_state_on_another_device_than_its_param_raises_before_writing():
    params = [torch.nn.Parameter(torch.ones(10, device=DEVICE)) for _ in range(2)]
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer = fusedoptim.SGD(params, lr=0.1, momentum=0.9)
    optimizer.step()
    state = optimizer.state[params[1]]
    state["momentum_buffer"] = state["momentum_buffer"].cpu()
    snapshot = _snapshot(optimizer, params)
    with pytest.raises(RuntimeError, match="is on"):
        optimizer.step()
    _assert_unchanged(optimizer, params, snapshot)


def test_a_device_that_does_not_exist_is_refused_before_the_step_counter_moves():
    p = torch.zeros(4, device=DEVICE)
    g = torch.ones_like(p)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    step = torch.tensor(0.0)
    with pytest.raises(RuntimeError, match="does not exist"):
        call = _C.AdamCall(
            dtype=0,
            numels=[4],
            params=[p.data_ptr()],
            exp_avgs=[m.data_ptr()],
            exp_avg_sqs=[v.data_ptr()],
            max_exp_avg_sqs=[],
            steps=[step.data_ptr()],
            step_dtype=0,
            device=torch.cuda.device_count(),
        )
        _C.adam_step(
            call,
            [g.data_ptr()],
            lr=0.1,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            l1=0.0,
            decoupled_weight_decay=False,
            amsgrad=False,
            maximize=False,
            num_threads=1,
            stream=0,
        )
    assert step.item() == 0.0
    assert torch.equal(p, torch.zeros_like(p))
