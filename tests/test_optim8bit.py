"""Adam8bit, AdamW8bit and SGD8bit against the plain-torch reference of the scheme.

The reference (tests/quant_reference.py) decodes the state, runs fusedoptim's
float step on it (itself tested against torch.optim to an ulp) and encodes:
the optimizers must match it bit for bit, params and state, over many steps,
for every option, param dtype, odd size and block size. Small params keep
float state and must equal fusedoptim's float optimizers bit for bit.
Tolerance: none, except where a test says otherwise.
"""

from __future__ import annotations

import copy
import io
import itertools

import pytest
import quant_reference as ref
import torch

import fusedoptim

STEPS = 8
SIZES = (4096, 4097, 65537)  # at the threshold, a tail block, several CPU chunks
ADAM_OPTIONS = [
    dict(amsgrad=amsgrad, maximize=maximize, weight_decay=decay, l1=l1)
    for amsgrad, maximize, decay, l1 in itertools.product(
        (False, True), (False, True), (0.0, 0.1), (0.0, 1e-3)
    )
]
SGD_OPTIONS = [
    dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.01, maximize=False, l1=0.0),
    dict(momentum=0.9, dampening=0.3, nesterov=False, weight_decay=0.0, maximize=True, l1=1e-3),
    dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.01, maximize=False, l1=0.0),
]


def NAME(cls: type) -> str:  # noqa: N802 (a pytest ids function)
    return cls.__name__


def opt_id(kwargs: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items())


def flat_state(opt, p, moment):
    state = opt.state[p]
    return state[moment + "_codes"].reshape(-1), state[moment + "_absmax"]


def run_adam(cls, kwargs, size, dtype=torch.float32, block=256, steps=STEPS, seed=0):
    """Runs `cls` and the reference side by side; returns (param, reference param, opt, state)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(size, generator=gen).to(dtype)
    p = torch.nn.Parameter(values.clone())
    q = values.clone()
    lr = 1e-2
    opt = cls([p], lr=lr, block_size=block, **kwargs)
    decoupled = cls is fusedoptim.AdamW8bit
    kwargs = {"weight_decay": opt.param_groups[0]["weight_decay"], **kwargs}
    state = ref.zero_state(size, kwargs.get("amsgrad", False), block)
    for step in range(steps):
        g = torch.randn(size, generator=gen).to(dtype)
        p.grad = g.clone()
        opt.step()
        ref.adam8bit_step(
            q, g, state, step, block=block, lr=lr, decoupled_weight_decay=decoupled, **kwargs
        )
    return p, q, opt, state


@pytest.mark.parametrize("kwargs", ADAM_OPTIONS, ids=opt_id)
@pytest.mark.parametrize(
    "cls", [fusedoptim.Adam8bit, fusedoptim.AdamW8bit], ids=lambda c: c.__name__
)
def test_adam8bit_equals_the_reference_for_every_option(cls, kwargs):
    p, q, opt, state = run_adam(cls, kwargs, 65537)
    assert torch.equal(p.detach(), q)
    for moment in state:
        codes, absmax = flat_state(opt, p, moment)
        assert torch.equal(codes, state[moment][0]), moment
        assert torch.equal(absmax, state[moment][1]), moment


@pytest.mark.parametrize("block", [32, 256, 4096])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_adamw8bit_every_dtype_size_and_block_size(dtype, size, block):
    p, q, opt, state = run_adam(fusedoptim.AdamW8bit, {"amsgrad": True}, size, dtype, block)
    assert torch.equal(p.detach(), q)
    assert opt.state[p]["exp_avg_codes"].dtype == torch.uint8
    assert opt.state[p]["exp_avg_absmax"].shape == (-(-size // block),)
    for moment in state:
        codes, absmax = flat_state(opt, p, moment)
        assert torch.equal(codes, state[moment][0]) and torch.equal(absmax, state[moment][1])


@pytest.mark.parametrize("kwargs", SGD_OPTIONS, ids=opt_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sgd8bit_equals_the_reference(kwargs, dtype):
    gen = torch.Generator().manual_seed(1)
    values = torch.randn(65537, generator=gen).to(dtype)
    p = torch.nn.Parameter(values.clone())
    q = values.clone()
    opt = fusedoptim.SGD8bit([p], lr=0.05, **kwargs)
    state = {}
    for _ in range(STEPS):
        g = torch.randn(values.shape, generator=gen).to(dtype)
        p.grad = g.clone()
        opt.step()
        ref.sgd8bit_step(q, g, state, lr=0.05, **kwargs)
        assert torch.equal(p.detach(), q)
    if kwargs["momentum"]:
        codes, absmax = flat_state(opt, p, "momentum_buffer")
        assert torch.equal(codes, state["momentum_buffer"][0])
        assert torch.equal(absmax, state["momentum_buffer"][1])
    else:
        assert not opt.state[p]


@pytest.mark.parametrize(
    ("quantized", "floating"),
    [
        (fusedoptim.AdamW8bit, fusedoptim.AdamW),
        (fusedoptim.Adam8bit, fusedoptim.Adam),
        (fusedoptim.SGD8bit, fusedoptim.SGD),
    ],
    ids=lambda c: c.__name__,
)
def test_small_and_float64_params_keep_float_state(quantized, floating):
    # Biases and norms (under min_8bit_size elements) and float64 params keep
    # the float state of the float optimizer, bit for bit; the large param in
    # the same group takes the 8-bit form.
    gen = torch.Generator().manual_seed(2)
    values = [torch.randn(n, generator=gen) for n in (7, 4095)] + [torch.randn(9000).double()]
    values.append(torch.randn(8192, generator=gen))
    kwargs = {"lr": 0.01, "momentum": 0.9} if floating is fusedoptim.SGD else {"lr": 0.01}
    ours = [torch.nn.Parameter(v.clone()) for v in values]
    theirs = [torch.nn.Parameter(v.clone()) for v in values]
    a, b = quantized(ours, **kwargs), floating(theirs, **kwargs)
    for _ in range(STEPS):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    for p, q in zip(ours[:3], theirs[:3]):
        assert torch.equal(p, q)
        assert a.state[p].keys() == b.state[q].keys()
    assert any(key.endswith("_codes") for key in a.state[ours[3]])


def test_state_bytes_per_param():
    p = torch.nn.Parameter(torch.zeros(1 << 20))
    p.grad = torch.ones_like(p)
    for cls, limit in [(fusedoptim.AdamW8bit, 2.1), (fusedoptim.SGD8bit, 1.05)]:
        opt = cls([p], lr=1e-3, momentum=0.9) if cls is fusedoptim.SGD8bit else cls([p])
        opt.step()
        tensors = [t for t in opt.state[p].values() if t.dim() > 0]
        per_param = sum(t.numel() * t.element_size() for t in tensors) / p.numel()
        assert per_param <= limit, (cls.__name__, per_param)


def test_state_dict_is_plain_tensors_and_resumes_bit_for_bit():
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(10000, generator=gen)
    grads = [torch.randn(10000, generator=gen) for _ in range(12)]

    def run(steps, p, opt):
        for g in steps:
            p.grad = g.clone()
            opt.step()

    p = torch.nn.Parameter(values.clone())
    whole = fusedoptim.AdamW8bit([p], lr=1e-2, amsgrad=True)
    run(grads, p, whole)

    q = torch.nn.Parameter(values.clone())
    first = fusedoptim.AdamW8bit([q], lr=1e-2, amsgrad=True)
    run(grads[:5], q, first)
    buffer = io.BytesIO()
    torch.save({"param": q.detach(), "opt": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    r = torch.nn.Parameter(saved["param"].clone())
    resumed = fusedoptim.AdamW8bit([r], lr=1e-2, amsgrad=True)
    resumed.load_state_dict(saved["opt"])
    run(grads[5:], r, resumed)

    assert torch.equal(p, r)
    for key, value in whole.state[p].items():
        assert torch.equal(resumed.state[r][key], value), key


def test_float_state_dict_is_quantized_on_load_and_back():
    # A torch.optim.AdamW checkpoint loads into AdamW8bit (its moments
    # quantized as the reference quantizes them), and an AdamW8bit checkpoint
    # into fusedoptim.AdamW (dequantized as the reference does).
    gen = torch.Generator().manual_seed(4)
    p = torch.nn.Parameter(torch.randn(5000, generator=gen))
    torch_opt = torch.optim.AdamW([p], lr=1e-2, foreach=False)
    for _ in range(3):
        p.grad = torch.randn(5000, generator=gen)
        torch_opt.step()
    state = torch_opt.state[p]
    eight = fusedoptim.AdamW8bit([p], lr=1e-2)
    eight.load_state_dict(torch_opt.state_dict())
    codes, absmax = flat_state(eight, p, "exp_avg")
    expected = ref.quantize(ref.SIGNED, state["exp_avg"])
    assert torch.equal(codes, expected[0]) and torch.equal(absmax, expected[1])
    codes, absmax = flat_state(eight, p, "exp_avg_sq")
    expected = ref.quantize_second_moment(state["exp_avg_sq"])
    assert torch.equal(codes, expected[0]) and torch.equal(absmax, expected[1])
    assert "exp_avg" not in eight.state[p] and eight.param_groups[0]["block_size"] == 256

    back = fusedoptim.AdamW([p], lr=1e-2)
    back.load_state_dict(eight.state_dict())
    assert torch.equal(back.state[p]["exp_avg"], ref.dequantize(ref.SIGNED, *expected_m(eight, p)))
    assert "block_size" not in back.param_groups[0]
    assert back.state[p]["step"].item() == 3


def expected_m(opt, p):
    return flat_state(opt, p, "exp_avg")


def test_dequantized_state_dict_loads_into_torch_and_training_continues():
    gen = torch.Generator().manual_seed(5)
    values = torch.randn(64, 128, generator=gen)
    ours = torch.nn.Parameter(values.clone())
    eight = fusedoptim.AdamW8bit([ours], lr=1e-2, weight_decay=0.1)
    for _ in range(4):
        ours.grad = torch.randn(values.shape, generator=gen)
        eight.step()
    theirs = torch.nn.Parameter(ours.detach().clone())
    torch_opt = torch.optim.AdamW([theirs], lr=1e-2, weight_decay=0.1, foreach=False)
    torch_opt.load_state_dict(fusedoptim.dequantized_state_dict(eight.state_dict()))
    state = torch_opt.state[theirs]
    assert state["exp_avg"].shape == (64, 128) and state["exp_avg"].dtype == torch.float32
    expected = ref.dequantize(ref.SIGNED, *flat_state(eight, ours, "exp_avg"))
    assert torch.equal(state["exp_avg"].reshape(-1), expected)
    back = fusedoptim.AdamW([ours], lr=1e-2, weight_decay=0.1)
    back.load_state_dict(eight.state_dict())
    assert back.state[ours]["step"] is not torch_opt.state[theirs]["step"]
    for _ in range(3):  # torch and fusedoptim continue from the same dequantized state
        g = torch.randn(values.shape, generator=gen)
        ours.grad, theirs.grad = g.clone(), g.clone()
        back.step()
        torch_opt.step()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-6)


def test_channels_last_and_strided_params():
    # Codes are laid out like the param (memory order blocks); a view with
    # gaps is updated through its dense staging copy, as with float state.
    gen = torch.Generator().manual_seed(6)
    conv = torch.randn(16, 8, 7, 7, generator=gen).to(memory_format=torch.channels_last)
    base = torch.randn(128, 96, generator=gen)
    p = torch.nn.Parameter(conv.clone())
    gapped = torch.nn.Parameter(base.clone()[:, ::2])
    opt = fusedoptim.AdamW8bit([p, gapped], lr=1e-2)
    flat_p = p.detach().permute(0, 2, 3, 1).reshape(-1).clone()
    flat_gapped = gapped.detach().contiguous().reshape(-1).clone()
    states = [ref.zero_state(p.numel()), ref.zero_state(gapped.numel())]
    for step in range(4):
        g = torch.randn(p.shape, generator=gen).to(memory_format=torch.channels_last)
        h = torch.randn(gapped.shape, generator=gen)
        p.grad, gapped.grad = g, h
        opt.step()
        for x, grad, state in [
            (flat_p, g.permute(0, 2, 3, 1).reshape(-1), states[0]),
            (flat_gapped, h.reshape(-1), states[1]),
        ]:
            ref.adam8bit_step(
                x, grad, state, step, lr=1e-2, weight_decay=1e-2, decoupled_weight_decay=True
            )
    assert opt.state[p]["exp_avg_codes"].stride() == p.stride()
    assert torch.equal(p.detach().permute(0, 2, 3, 1).reshape(-1), flat_p)
    assert torch.equal(gapped.detach().reshape(-1), flat_gapped)


def test_complex_params_quantize_their_real_view():
    gen = torch.Generator().manual_seed(7)
    values = torch.randn(4096, generator=gen, dtype=torch.complex64)
    p = torch.nn.Parameter(values.clone())
    q = torch.view_as_real(values.clone()).reshape(-1)
    opt = fusedoptim.Adam8bit([p], lr=1e-2)
    state = ref.zero_state(q.numel())
    for step in range(4):
        g = torch.randn(values.shape, generator=gen, dtype=torch.complex64)
        p.grad = g
        opt.step()
        ref.adam8bit_step(q, torch.view_as_real(g).reshape(-1), state, step, lr=1e-2)
    assert opt.state[p]["exp_avg_codes"].shape == (4096, 2)
    assert torch.equal(torch.view_as_real(p.detach()).reshape(-1), q)


def test_schedulers_grad_scaler_and_clipping_run_on_8bit_state():
    # The options shared with the float optimizers change the float step the
    # 8-bit one wraps, nothing else: against AdamW on a state dequantized
    # each step, within the quantization error of one step.
    torch.manual_seed(8)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 4))
    opt = fusedoptim.AdamW8bit(model.parameters(), lr=1e-2, max_grad_norm=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, y = torch.randn(32, 64), torch.randn(32, 4)
    losses = []
    for step in range(12):
        loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        if step == 5:
            next(model.parameters()).grad[0, 0] = float("inf")  # a skipped step
        scaler.step(opt)
        scaler.update()
        scheduler.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert opt.state[model[0].weight]["step"].item() == 11
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 48}, "block_size"),
        ({"block_size": 16}, "block_size"),
        ({"block_size": 8192}, "block_size"),
        ({"block_size": 256.0}, "block_size"),
        ({"block_size": True}, "block_size"),
        ({"min_8bit_size": -1}, "min_8bit_size"),
        ({"min_8bit_size": 1.5}, "min_8bit_size"),
    ],
)
@pytest.mark.parametrize(
    "cls", [fusedoptim.AdamW8bit, fusedoptim.SGD8bit], ids=lambda c: c.__name__
)
def test_bad_options_are_refused_by_name(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls([torch.nn.Parameter(torch.zeros(8))], lr=0.1, **kwargs)
    opt = cls([torch.nn.Parameter(torch.zeros(8))], lr=0.1)
    with pytest.raises(ValueError, match=f"{match} in a param group"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(8))], **kwargs})


def test_damaged_state_is_refused_before_any_write():
    gen = torch.Generator().manual_seed(9)
    params = [torch.nn.Parameter(torch.randn(5000, generator=gen)) for _ in range(2)]
    opt = fusedoptim.AdamW8bit(params, lr=1e-2)
    for p in params:
        p.grad = torch.randn(5000, generator=gen)
    opt.step()
    before = [p.detach().clone() for p in params]
    states = [{k: v.clone() for k, v in opt.state[p].items()} for p in params]
    opt.state[params[1]]["exp_avg_absmax"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"params\[1\].*exp_avg_absmax.*20 blocks"):
        opt.step()
    opt.state[params[1]]["exp_avg_absmax"] = states[1]["exp_avg_absmax"]
    opt.state[params[1]]["exp_avg_sq_codes"] = states[1]["exp_avg_sq_codes"].float()
    with pytest.raises(ValueError, match=r"params\[1\].*exp_avg_sq_codes.*uint8"):
        opt.step()
    for p, b, s in zip(params, before, states):
        assert torch.equal(p, b)
        assert torch.equal(opt.state[p]["exp_avg_codes"], s["exp_avg_codes"])
        assert opt.state[p]["step"].item() == 1


@pytest.mark.parametrize(
    "edit",
    [{"block_size": 0}, {"block_size": 100}, {"block_size": "64"}, {"min_8bit_size": -3}],
    ids=str,
)
def test_group_options_edited_between_steps_are_refused_by_name(edit):
    gen = torch.Generator().manual_seed(12)
    params = [torch.nn.Parameter(torch.randn(5000, generator=gen)) for _ in range(2)]
    opt = fusedoptim.AdamW8bit([params[0]], lr=1e-2)
    opt.add_param_group({"params": [params[1]]})
    for p in params:
        p.grad = torch.randn(5000, generator=gen)
    opt.step()
    before = [p.detach().clone() for p in params]
    opt.param_groups[1].update(edit)
    (key,) = edit
    with pytest.raises(ValueError, match=f"Invalid {key} in param group 1 of AdamW8bit"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    assert all(opt.state[p]["step"].item() == 1 for p in params)


def _stepped_8bit_and_torch_state(gen):
    params = [torch.nn.Parameter(torch.randn(5000, generator=gen)) for _ in range(2)]
    torch_opt = torch.optim.AdamW(params, lr=1e-2, foreach=False)
    eight = fusedoptim.AdamW8bit(params, lr=1e-2)
    for opt in (torch_opt, eight):
        for p in params:
            p.grad = torch.randn(5000, generator=gen)
        opt.step()
    return params, eight, torch_opt.state_dict()


@pytest.mark.parametrize("damage", ["moment shape", "block_size"])
def test_a_refused_load_leaves_the_optimizer_as_it_was(damage):
    """torch.optim loads nothing when it refuses a state dict; the 8-bit
    conversion on load must not leave some params converted either."""
    params, eight, saved = _stepped_8bit_and_torch_state(torch.Generator().manual_seed(13))
    saved = copy.deepcopy(saved)
    if damage == "moment shape":
        # copy_ would broadcast it over the param's 5000 elements.
        saved["state"][1]["exp_avg"] = torch.ones(1)
        match = r"exp_avg has shape \(1,\) but the param has \(5000,\)"
    else:
        saved["param_groups"][0]["block_size"] = 100
        match = "Invalid block_size in saved param group 0: 100"
    state = {id(p): {k: v.clone() for k, v in eight.state[p].items()} for p in params}
    with pytest.raises(ValueError, match=match):
        eight.load_state_dict(saved)
    assert eight.param_groups[0]["block_size"] == 256
    for p in params:
        assert set(eight.state[p]) == set(state[id(p)])
        for key, value in state[id(p)].items():
            assert torch.equal(eight.state[p][key], value), key
    for p in params:
        p.grad = torch.ones(5000)
    eight.step()  # and training continues with the 8-bit state it had
    assert all("exp_avg_codes" in eight.state[p] for p in params)


def test_plans_serve_mixed_groups_step_after_step():
    gen = torch.Generator().manual_seed(10)
    params = [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in (10, 5000, 70000)]
    opt = fusedoptim.AdamW8bit(params, lr=1e-2)
    plans = []
    for _ in range(5):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
        plans.append(opt._plans.get(0))
    assert plans[1] is not None and plans[1] is plans[-1]
    assert len(plans[-1].batches) == 2  # one float-state call, one 8-bit call


def test_nonzero_second_moments_stay_nonzero_through_training():
    # Grads of very different sizes in one block: the small ones must not
    # have their second moment decoded as 0 (m / eps would blow up).
    p = torch.nn.Parameter(torch.zeros(4096))
    opt = fusedoptim.Adam8bit([p], lr=1e-3)
    scales = torch.logspace(-12, 3, 4096)
    for step in range(20):
        p.grad = scales * (1.0 if step % 2 else -1.0)
        opt.step()
    v = ref.dequantize_second_moment(*flat_state(opt, p, "exp_avg_sq"))
    assert (v > 0).all()
    assert p.abs().max().item() < 20 * 1e-3
