"""Step-by-step parity with torch.optim (foreach=False) for every option and dtype."""

from __future__ import annotations

import platform

import pytest
import torch

import fusedoptim

from optim_reference import (
    HALF_TYPES,
    Fp32RoundedReference,
    adam_option_grid,
    assert_close_to_scale,
    fused_and_torch_classes,
    make_params,
    option_id,
    random_grads,
    run_twins,
    sgd_option_grid,
    twin_params,
    usable_isas,
)

STEPS = 100
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def _single_threaded_reference():
    """torch's reference ops run on one thread (its OpenMP pool spinning against
    ours is what makes these tests slow on a busy 2-core machine); fusedoptim
    keeps two threads so the multithreaded chunk path is what gets compared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fusedoptim.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def run_side_by_side(fused_cls, torch_cls, kwargs, dtype, steps=STEPS, seed=0):
    """Two param groups (the second with its own lr), compared after every step."""
    values = make_params(dtype, seed=seed)
    ours, theirs = twin_params(values)
    second_lr = kwargs["lr"] * 0.5

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": second_lr}]

    opt = fused_cls(groups(ours), **kwargs)
    if dtype in HALF_TYPES:
        reference = Fp32RoundedReference(torch_cls, theirs, **kwargs)
        reference.opt.param_groups[0]["params"] = reference.shadow[:2]
        reference.opt.param_groups.append({**reference.opt.param_groups[0]})
        reference.opt.param_groups[1]["params"] = reference.shadow[2:]
        reference.opt.param_groups[1]["lr"] = second_lr
    else:
        reference = torch_cls(groups(theirs), foreach=False, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        for a, b, g in zip(ours, theirs, random_grads(values, gen)):
            a.grad = g.clone()
            b.grad = g.clone()
        opt.step()
        reference.step()
        assert_close_to_scale(ours, theirs, dtype, f"step {step}")
    return opt, ours, theirs


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kwargs", list(sgd_option_grid()), ids=option_id)
def test_sgd_matches_torch(kwargs, dtype):
    steps = STEPS if dtype not in HALF_TYPES else 30
    opt, ours, _ = run_side_by_side(fusedoptim.SGD, torch.optim.SGD, kwargs, dtype, steps)
    for p in ours:
        has_buffer = "momentum_buffer" in opt.state.get(p, {})
        assert has_buffer == (kwargs["momentum"] != 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "name,kwargs", list(adam_option_grid()), ids=lambda x: x if isinstance(x, str) else option_id(x)
)
def test_adam_matches_torch(name, kwargs, dtype):
    fused_cls, torch_cls = fused_and_torch_classes(name)
    steps = STEPS if dtype not in HALF_TYPES else 30
    opt, ours, _ = run_side_by_side(fused_cls, torch_cls, kwargs, dtype, steps)
    state = opt.state[ours[0]]
    assert state["step"].item() == steps
    assert state["step"].dtype == torch.float32 and state["step"].device.type == "cpu"
    assert ("max_exp_avg_sq" in state) == kwargs["amsgrad"]


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64), ids=str)
def test_several_lr_betas_eps_values(dtype):
    for lr, betas, eps in [
        (3e-4, (0.8, 0.99), 1e-6),
        (1.0, (0.0, 0.0), 0.0),
        (0.1, (0.6, 0.4), 1e-3),
    ]:
        run_side_by_side(
            fusedoptim.AdamW,
            torch.optim.AdamW,
            dict(lr=lr, betas=betas, eps=eps, weight_decay=0.05),
            dtype,
            steps=40,
        )


def test_complex_params_follow_torch_real_view():
    gen = torch.Generator().manual_seed(3)
    values = [torch.randn(n, dtype=torch.complex64, generator=gen) for n in (5, 1023)]
    for fused_cls, torch_cls, kwargs in [
        (fusedoptim.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
        (fusedoptim.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, weight_decay=0.1)),
    ]:
        ours, theirs = twin_params(values)
        a, b = fused_cls(ours, **kwargs), torch_cls(theirs, foreach=False, **kwargs)
        for _ in range(30):
            for p, q in zip(ours, theirs):
                g = torch.randn(p.shape, dtype=torch.complex64, generator=gen)
                p.grad, q.grad = g.clone(), g.clone()
            a.step()
            b.step()
        assert_close_to_scale(
            [torch.view_as_real(p) for p in ours],
            [torch.view_as_real(q) for q in theirs],
            torch.float32,
        )


def test_dense_non_contiguous_params_follow_torch():
    """A transposed weight and a channels_last conv weight: dense, not contiguous."""
    gen = torch.Generator().manual_seed(4)
    shapes = [
        lambda: torch.randn(17, 33, generator=gen).t(),
        lambda: torch.randn(4, 3, 5, 5, generator=gen).to(memory_format=torch.channels_last),
    ]
    values = [make() for make in shapes]
    assert not any(v.is_contiguous() for v in values)
    ours = [torch.nn.Parameter(v.clone(memory_format=torch.preserve_format)) for v in values]
    theirs = [torch.nn.Parameter(v.clone(memory_format=torch.preserve_format)) for v in values]
    a = fusedoptim.Adam(ours, lr=1e-2)
    b = torch.optim.Adam(theirs, lr=1e-2, foreach=False)
    for _ in range(20):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen).contiguous(memory_format=torch.preserve_format)
            g = torch.empty_like(p).copy_(g)
            p.grad, q.grad = (
                g.clone(memory_format=torch.preserve_format),
                g.clone(memory_format=torch.preserve_format),
            )
        a.step()
        b.step()
    assert_close_to_scale(ours, theirs, torch.float32)


def test_params_without_grad_are_skipped_and_get_no_state():
    p, q = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = fusedoptim.Adam([p, q], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.equal(q, torch.ones(3)) and q not in opt.state
    assert opt.state[p]["step"].item() == 1


def test_mixed_dtypes_in_one_group():
    values = [torch.randn(100, dtype=torch.float64), torch.randn(100)]
    ours, theirs = twin_params(values)
    a = fusedoptim.AdamW(ours, lr=1e-2)
    b = torch.optim.AdamW(theirs, lr=1e-2, foreach=False)
    for _ in range(10):
        for p, q in zip(ours, theirs):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert_close_to_scale(ours[:1], theirs[:1], torch.float64)
    assert_close_to_scale(ours[1:], theirs[1:], torch.float32)


def test_param_added_mid_training_gets_its_own_bias_correction():
    gen = torch.Generator().manual_seed(5)
    first = [torch.nn.Parameter(torch.randn(50, generator=gen)) for _ in range(2)]
    late = [torch.nn.Parameter(torch.randn(50, generator=gen))]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in first + late]
    a = fusedoptim.Adam([{"params": first}], lr=1e-2)
    b = torch.optim.Adam([{"params": twins[:2]}], lr=1e-2, foreach=False)
    for step in range(12):
        if step == 5:
            # Same group, different step counts: the kernel groups by step value.
            a.param_groups[0]["params"].append(late[0])
            b.param_groups[0]["params"].append(twins[2])
        for p, q in zip(first + late, twins):
            g = torch.randn(50, generator=gen)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert a.state[late[0]]["step"].item() == 7 and a.state[first[0]]["step"].item() == 12
    assert_close_to_scale(first + late, twins, torch.float32)


# Two settings that between them compile each kernel option both ways: Adam's
# coupled decay, amsgrad, L1 and grad multiplies (maximize), and SGD's nesterov,
# coupled decay, L1 and grad multiplies.
ISA_SETTINGS = (
    (
        (fusedoptim.AdamW, dict(lr=1e-2, amsgrad=True, l1=1e-3)),
        (fusedoptim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ),
    (
        (fusedoptim.Adam, dict(lr=1e-2, weight_decay=0.1, maximize=True)),
        (fusedoptim.SGD, dict(lr=1e-2, momentum=0.9, dampening=0.2, l1=1e-3, maximize=True)),
    ),
)


# The x86 baseline build has no FMA instruction and, as torch's own default
# kernels there, rounds a * b + c twice (ops/common.h, [note: baseline x86
# rounds twice]); every other build fuses.
FUSED_ISAS = [
    isa
    for isa in fusedoptim.info()["isas_compiled"]
    if isa != "baseline" or platform.machine().lower() not in ("x86_64", "amd64")
]


def isa_results(isa, setting):
    (adam_cls, adam_kwargs), (sgd_cls, sgd_kwargs) = ISA_SETTINGS[setting]
    fusedoptim._backend.set_isa(isa)
    results = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        opt_params = [torch.nn.Parameter(v) for v in make_params(dtype, seed=7)]
        sgd_params = [torch.nn.Parameter(v) for v in make_params(dtype, seed=7)]
        adam = adam_cls(opt_params, **adam_kwargs)
        sgd = sgd_cls(sgd_params, **sgd_kwargs)
        gen = torch.Generator().manual_seed(8)
        for _ in range(5):
            for p, q in zip(opt_params, sgd_params):
                p.grad = torch.randn(p.shape, generator=gen).to(dtype)
                q.grad = p.grad.clone()
            adam.step()
            sgd.step()
        results[dtype] = [p.detach().clone() for p in opt_params + sgd_params]
    return results


@pytest.mark.parametrize("setting", range(len(ISA_SETTINGS)))
@pytest.mark.parametrize("isa", fusedoptim.info()["isas_compiled"])
def test_every_compiled_isa_gives_the_same_results(isa, setting):
    """-ffp-contract=off makes the builds that fuse (math_fma) agree bit for
    bit; the x86 baseline build, which rounds twice, agrees to a few ulp."""
    usable_fused = [chosen for chosen in FUSED_ISAS if chosen in usable_isas()]
    if isa not in usable_isas() or not usable_fused:
        pytest.skip(f"this CPU cannot run {isa} and a build that fuses")
    reference, ours = isa_results(usable_fused[0], setting), isa_results(isa, setting)
    for dtype, params in ours.items():
        if isa in FUSED_ISAS:
            assert all(torch.equal(a, b) for a, b in zip(reference[dtype], params)), dtype
        else:
            assert_close_to_scale(params, reference[dtype], dtype)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_thread_counts_give_identical_bits(threads):
    def run():
        params = [
            torch.nn.Parameter(v) for v in make_params(torch.float32, sizes=(1, 70000, 3, 200000))
        ]
        opt = fusedoptim.Adam(params, lr=1e-2)
        gen = torch.Generator().manual_seed(2)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        return params

    fusedoptim.set_num_threads(1)
    expected = run()
    fusedoptim.set_num_threads(threads)
    for a, b in zip(run(), expected):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs", list(sgd_option_grid()), ids=option_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_sgd_is_bit_identical_to_torch(kwargs, dtype):
    """SGD's ops fuse exactly where torch's kernels do (ops::math_fma) and have
    no sqrt or division, so every bit matches torch.optim.SGD(foreach=False)."""
    gen = torch.Generator().manual_seed(11)
    values = make_params(dtype, seed=11)
    ours, theirs = twin_params(values)
    a = fusedoptim.SGD(ours, **kwargs)
    b = torch.optim.SGD(theirs, foreach=False, **kwargs)
    for _ in range(20):
        for p, q, g in zip(ours, theirs, random_grads(ours, gen)):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs))


def test_adam_coupled_decay_cancelling_the_grad_follows_torch():
    """Found by test_optim_hypothesis: with coupled weight decay, grad + wd * p
    nearly cancels for some elements and the update divides by that small
    value; torch fuses that add, and an unfused one deviated by 1e-5 of scale."""
    kwargs = dict(
        lr=0.5,
        betas=(0.0, 0.5),
        eps=6.917e-05,
        weight_decay=0.392578125,
        amsgrad=True,
        maximize=True,
    )
    run_twins(fusedoptim.Adam, torch.optim.Adam, kwargs, seed=643, steps=1)
