"""Bad input: a clear error naming the culprit, and not one byte written."""

from __future__ import annotations

import copy

import pytest
import torch

import fusedoptim


def snapshot(opt):
    params = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    state = copy.deepcopy({id(k): v for k, v in opt.state.items()})
    return params, state


def assert_unchanged(opt, before):
    params, state = before
    now = [p.detach() for g in opt.param_groups for p in g["params"]]
    assert all(torch.equal(a, b) for a, b in zip(params, now))
    current = {id(k): v for k, v in opt.state.items()}
    assert current.keys() == state.keys()
    for key, entries in state.items():
        assert current[key].keys() == entries.keys()
        for name, value in entries.items():
            assert torch.equal(current[key][name], value), name


def trained(cls, **kwargs):
    """Two groups, two steps done: there is state to protect."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 2))
    groups = [
        {"params": model[0].parameters()},
        {"params": model[1].parameters(), "lr": 0.01},
    ]
    opt = cls(groups, **kwargs)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(3, 5)).sum().backward()
        opt.step()
    return model, opt


OPTIMIZERS = [
    (fusedoptim.Adam, dict(lr=0.1, amsgrad=True)),
    (fusedoptim.AdamW, dict(lr=0.1)),
    (fusedoptim.SGD, dict(lr=0.1, momentum=0.9)),
]
IDS = ["Adam", "AdamW", "SGD"]


@pytest.mark.parametrize(
    ("cls", "kwargs", "error"),
    [
        # Adam and AdamW refuse sparse grads, as torch's do.
        (fusedoptim.Adam, dict(lr=0.1, amsgrad=True), RuntimeError),
        (fusedoptim.AdamW, dict(lr=0.1), RuntimeError),
        # SGD takes them (test_sparse_grads.py), but not with weight decay.
        (fusedoptim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1), ValueError),
    ],
    ids=IDS,
)
def test_sparse_grad_in_second_group_refused_before_first_group_is_written(cls, kwargs, error):
    model, opt = trained(cls, **kwargs)
    model(torch.randn(3, 5)).sum().backward()
    model[1].bias.grad = model[1].bias.grad.to_sparse()
    before = snapshot(opt)
    with pytest.raises(error, match=r"params\[1\] of param group 1.*sparse"):
        opt.step()
    assert_unchanged(opt, before)


@pytest.mark.skipif(
    not hasattr(torch.nn.Parameter(torch.ones(1)), "grad_dtype"), reason="torch < 2.10"
)
@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS, ids=IDS)
def test_grad_dtype_that_does_not_mix_is_refused(cls, kwargs):
    # fp32, fp16 and bf16 mix (tests/test_mixed_precision.py); a float64 grad
    # for a float32 param is refused, by name, before anything is written.
    model, opt = trained(cls, **kwargs)
    model[1].bias.grad = None
    model[1].bias.grad_dtype = torch.float64
    model(torch.randn(3, 5)).sum().backward()
    before = snapshot(opt)
    with pytest.raises(TypeError, match=r"params\[1\] of param group 1: grad has dtype.*mix"):
        opt.step()
    assert_unchanged(opt, before)


@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS, ids=IDS)
def test_param_whose_elements_share_memory_is_refused(cls, kwargs):
    # An expanded view: torch.optim's in-place ops refuse to write it too.
    # (Views with gaps are updated: tests/test_strided_params.py.)
    model, opt = trained(cls, **kwargs)
    p = torch.nn.Parameter(torch.randn(1, 8).expand(4, 8))
    opt.add_param_group({"params": [p]})
    p.grad = torch.zeros_like(p)
    model(torch.randn(3, 5)).sum().backward()
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"params\[0\] of param group 2: .*share one memory"):
        opt.step()
    assert_unchanged(opt, before)


@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS, ids=IDS)
def test_grad_dtype_differing_from_param_is_refused_by_name(cls, kwargs):
    model, opt = trained(cls, **kwargs)
    model(torch.randn(3, 5)).sum().backward()
    weight = model[0].weight
    weight.grad_dtype = None  # torch >= 2.10 then allows any grad dtype
    weight.grad = weight.grad.double()
    named = cls(model.named_parameters(), **kwargs)
    with pytest.raises(TypeError, match=r"parameter '0.weight'.*grad has dtype torch.float64"):
        named.step()
    before = snapshot(opt)
    with pytest.raises(TypeError, match=r"params\[0\] of param group 0: grad has dtype"):
        opt.step()
    assert_unchanged(opt, before)


def test_state_of_wrong_shape_is_refused():
    model, opt = trained(fusedoptim.Adam, lr=0.1)
    opt.state[model[1].bias]["exp_avg"] = torch.zeros(5)
    model(torch.randn(3, 5)).sum().backward()
    before = snapshot(opt)
    with pytest.raises(ValueError, match="exp_avg has shape"):
        opt.step()
    assert_unchanged(opt, before)


@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS, ids=IDS)
def test_non_finite_lr_set_between_steps_is_refused(cls, kwargs):
    model, opt = trained(cls, **kwargs)
    model(torch.randn(3, 5)).sum().backward()
    opt.param_groups[1]["lr"] = float("nan")
    before = snapshot(opt)
    with pytest.raises(ValueError, match="param group 1 has non-finite lr"):
        opt.step()
    assert_unchanged(opt, before)


def test_integer_param_dtype_refused():
    p = torch.zeros(3, dtype=torch.int32)  # a leaf tensor torch.optim accepts
    opt = fusedoptim.SGD([p], lr=0.1)
    p.grad = torch.zeros(3, dtype=torch.int32)
    with pytest.raises(TypeError, match="dtype torch.int32 is not supported"):
        opt.step()


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: fusedoptim.Adam(p, lr=-1.0), "Invalid learning rate: -1.0"),
        (lambda p: fusedoptim.Adam(p, eps=-1.0), "Invalid epsilon value: -1.0"),
        (lambda p: fusedoptim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
        (lambda p: fusedoptim.AdamW(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
        (lambda p: fusedoptim.AdamW(p, weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
        (
            lambda p: fusedoptim.Adam(p, betas=(0.9, torch.tensor(0.99))),
            "betas must be either both",
        ),
        (lambda p: fusedoptim.Adam(p, lr=torch.tensor([0.1, 0.2])), "Tensor lr must be 1-element"),
        (lambda p: fusedoptim.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: fusedoptim.SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda p: fusedoptim.SGD(p, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda p: fusedoptim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum"),
        (lambda p: fusedoptim.SGD(p, lr=torch.tensor([0.1, 0.2])), "Tensor lr must be 1-element"),
        (lambda p: fusedoptim.Adam(p, capturable=True), "capturable=True"),
        (lambda p: fusedoptim.SGD(p, differentiable=True), "differentiable=True"),
    ],
)
def test_constructor_messages_match_torch(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make([torch.nn.Parameter(torch.ones(2))])


def test_foreach_and_fused_are_accepted():
    p = torch.nn.Parameter(torch.ones(2))
    for fused, foreach in ((True, None), (None, True), (False, False)):
        opt = fusedoptim.AdamW([p], fused=fused, foreach=foreach)
        p.grad = torch.ones(2)
        opt.step()


@pytest.mark.parametrize("stage", ["call", "step"])
@pytest.mark.parametrize("cls,kwargs", OPTIMIZERS, ids=IDS)
def test_a_first_step_that_fails_after_the_checks_leaves_no_state(cls, kwargs, stage, monkeypatch):
    """Building a fused call or launching it can fail after every check has
    passed (a CUDA build with no code for this GPU, a refused launch). The state
    that step created is removed, so the next step starts afresh instead of
    reading an unfilled momentum buffer."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 2))
    twin = copy.deepcopy(model)
    ours = cls(model.parameters(), **kwargs)
    theirs = getattr(torch.optim, cls.__name__)(twin.parameters(), foreach=False, **kwargs)
    name = ("sgd_" if cls is fusedoptim.SGD else "adam_") + stage
    real = getattr(fusedoptim._backend, name)

    def failing(*args, **kw):
        raise RuntimeError("no kernel image is available for execution on the device")

    batches = [torch.randn(3, 5) for _ in range(3)]
    model(batches[0]).sum().backward()
    monkeypatch.setattr(fusedoptim._backend, name, failing)
    with pytest.raises(RuntimeError, match="no kernel image"):
        ours.step()
    monkeypatch.setattr(fusedoptim._backend, name, real)
    assert len(ours.state) == 0 and not ours._plans
    for x in batches:
        for opt, net in ((ours, model), (theirs, twin)):
            opt.zero_grad()
            net(x).sum().backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_state_creation_that_fails_halfway_is_undone(monkeypatch):
    """Out of memory between exp_avg and exp_avg_sq: no param keeps half a state."""
    model, opt = trained(fusedoptim.Adam, lr=0.1)
    extra = torch.nn.Parameter(torch.ones(4))
    opt.add_param_group({"params": [extra]})
    extra.grad = torch.ones(4)
    real_zeros_like = torch.zeros_like
    calls = []

    def zeros_like_then_oom(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("out of memory")
        return real_zeros_like(*args, **kw)

    monkeypatch.setattr(torch, "zeros_like", zeros_like_then_oom)
    with pytest.raises(torch.OutOfMemoryError):
        opt.step()
    monkeypatch.setattr(torch, "zeros_like", real_zeros_like)
    assert extra not in opt.state
    opt.step()
    assert opt.state[extra]["step"].item() == 1


def test_a_failed_launch_keeps_state_made_by_earlier_steps(monkeypatch):
    model, opt = trained(fusedoptim.SGD, lr=0.1, momentum=0.9)
    buffers = {id(p): s["momentum_buffer"].clone() for p, s in opt.state.items()}
    for group in opt.param_groups:
        group["momentum"] = 0.0  # no buffer is read or created this step

    def failing(*args, **kw):
        raise RuntimeError("launch failed")

    monkeypatch.setattr(fusedoptim._backend, "sgd_step", failing)
    with pytest.raises(RuntimeError, match="launch failed"):
        opt.step()
    assert {id(p): s["momentum_buffer"] for p, s in opt.state.items()}.keys() == buffers.keys()
    for p, s in opt.state.items():
        assert torch.equal(s["momentum_buffer"], buffers[id(p)])
