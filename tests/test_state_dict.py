"""state_dict layout, round trips with torch.optim, schedulers, closures, hooks."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import fusedoptim

from optim_reference import assert_close_to_scale


def model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(13, 31), torch.nn.Tanh(), torch.nn.Linear(31, 3))
    x = torch.randn(64, 13)
    y = torch.randn(64, 3)
    return model, x, y


def train(model, opt, x, y, steps, scheduler=None):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


PAIRS = [
    (fusedoptim.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    (fusedoptim.Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    (fusedoptim.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
]
IDS = ["AdamW", "Adam", "SGD"]


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_state_dict_layout_is_torchs(fused_cls, torch_cls, kwargs):
    model, x, y = model_and_data()
    twin = copy.deepcopy(model)
    ours, theirs = fused_cls(model.parameters(), **kwargs), torch_cls(twin.parameters(), **kwargs)
    train(model, ours, x, y, 3)
    train(twin, theirs, x, y, 3)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        assert a["state"][key].keys() == b["state"][key].keys()
        for name, value in a["state"][key].items():
            other = b["state"][key][name]
            assert value.dtype == other.dtype and value.shape == other.shape
            assert value.device == other.device
    for ga, gb in zip(a["param_groups"], b["param_groups"]):
        extra = {"l1", "max_grad_norm", "bf16_stochastic_round", "master_weights", "seed"}
        assert set(gb) <= set(ga) and set(ga) - set(gb) == extra


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_torch_to_fused_to_torch_mid_training(fused_cls, torch_cls, kwargs):
    """Switching implementations mid-training continues as if nothing changed."""
    model, x, y = model_and_data()
    reference = copy.deepcopy(model)
    ref_opt = torch_cls(reference.parameters(), foreach=False, **kwargs)
    train(reference, ref_opt, x, y, 30)

    torch_opt = torch_cls(model.parameters(), foreach=False, **kwargs)
    train(model, torch_opt, x, y, 10)
    fused_opt = fused_cls(model.parameters(), **kwargs)
    fused_opt.load_state_dict(torch_opt.state_dict())
    train(model, fused_opt, x, y, 10)
    back = torch_cls(model.parameters(), foreach=False, **kwargs)
    back.load_state_dict(fused_opt.state_dict())
    train(model, back, x, y, 10)
    assert_close_to_scale(list(model.parameters()), list(reference.parameters()), torch.float32)


def test_state_dict_loads_with_weights_only_and_keeps_l1():
    model, x, y = model_and_data()
    opt = fusedoptim.AdamW(model.parameters(), lr=1e-2, l1=1e-3)
    train(model, opt, x, y, 2)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = fusedoptim.AdamW(model.parameters(), lr=1e-2)
    fresh.load_state_dict(loaded)
    assert fresh.param_groups[0]["l1"] == 1e-3
    assert torch.equal(
        fresh.state[model[0].weight]["exp_avg"], opt.state[model[0].weight]["exp_avg"]
    )


def test_torch_state_dict_keeps_current_l1_and_old_formats_load():
    model, x, y = model_and_data()
    torch_opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train(model, torch_opt, x, y, 3)
    saved = torch_opt.state_dict()
    for group in saved["param_groups"]:
        for key in (
            "maximize",
            "foreach",
            "fused",
            "capturable",
            "differentiable",
            "decoupled_weight_decay",
        ):
            group.pop(key, None)
    for state in saved["state"].values():
        state["step"] = float(state["step"])  # as torch < 1.12 stored it
    opt = fusedoptim.Adam(model.parameters(), lr=1e-2, l1=1e-4)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["l1"] == 1e-4
    step = opt.state[model[0].weight]["step"]
    assert isinstance(step, torch.Tensor) and step.item() == 3 and step.dtype == torch.float32
    train(model, opt, x, y, 1)
    assert opt.state[model[0].weight]["step"].item() == 4


def test_fused_torch_state_dict_step_is_moved_to_host():
    model, x, y = model_and_data()
    torch_opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    train(model, torch_opt, x, y, 2)
    opt = fusedoptim.AdamW(model.parameters(), lr=1e-2, fused=True)
    opt.load_state_dict(torch_opt.state_dict())
    train(model, opt, x, y, 1)
    assert opt.state[model[0].weight]["step"].item() == 3


@pytest.mark.parametrize("fused_cls,torch_cls,kwargs", PAIRS, ids=IDS)
def test_lr_scheduler_and_tensor_lr(fused_cls, torch_cls, kwargs):
    model, x, y = model_and_data()
    twin = copy.deepcopy(model)
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    # Each optimizer gets its own lr tensor: schedulers update tensor lrs in place.
    ours = fused_cls(model.parameters(), lr=torch.tensor(0.02), **kwargs)
    theirs = torch_cls(twin.parameters(), lr=torch.tensor(0.02), foreach=False, **kwargs)
    s1 = torch.optim.lr_scheduler.OneCycleLR(ours, max_lr=0.05, total_steps=40)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.05, total_steps=40)
    train(model, ours, x, y, 30, s1)
    train(twin, theirs, x, y, 30, s2)
    assert_close_to_scale(list(model.parameters()), list(twin.parameters()), torch.float32)


def test_closure_is_called_with_grad_enabled_and_loss_returned():
    model, x, y = model_and_data()
    opt = fusedoptim.SGD(model.parameters(), lr=0.1)

    def closure():
        assert torch.is_grad_enabled()
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    with torch.no_grad():
        first = opt.step(closure)
    assert first.item() > opt.step(closure).item()


def test_hooks_fire_once_per_step_and_named_params_work():
    model, x, y = model_and_data()
    opt = fusedoptim.AdamW(model.named_parameters(), lr=1e-2)
    calls = []
    opt.register_step_pre_hook(lambda *a: calls.append("pre"))
    opt.register_step_post_hook(lambda *a: calls.append("post"))
    opt.register_state_dict_pre_hook(lambda *a: calls.append("sd"))
    train(model, opt, x, y, 2)
    opt.state_dict()
    assert calls == ["pre", "post", "pre", "post", "sd"]
    assert opt.state_dict()["param_groups"][0]["param_names"][0] == "0.weight"


def test_deepcopy_and_add_param_group():
    model, x, y = model_and_data()
    opt = fusedoptim.Adam(list(model.parameters())[:2], lr=1e-2)
    train(model, opt, x, y, 2)
    opt.add_param_group({"params": list(model.parameters())[2:], "lr": 1e-3})
    assert opt.param_groups[1]["l1"] == 0.0 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    clone = copy.deepcopy(opt)
    train(model, opt, x, y, 1)
    # deepcopy copies the params too, so look the state up by position.
    assert clone.state_dict()["state"][0]["step"].item() == 2
    assert opt.state[model[2].weight]["step"].item() == 1


def test_duplicate_parameter_warning_comes_from_torch():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        fusedoptim.SGD([p, p], lr=0.1)


def test_sgd_without_momentum_keeps_no_state():
    model, x, y = model_and_data()
    opt = fusedoptim.SGD(model.parameters(), lr=0.1)
    train(model, opt, x, y, 3)
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}


def test_zero_grad_set_to_none_and_regrown_grads():
    model, x, y = model_and_data()
    twin = copy.deepcopy(model)
    a = fusedoptim.AdamW(model.parameters(), lr=1e-2)
    b = torch.optim.AdamW(twin.parameters(), lr=1e-2, foreach=False)
    for set_to_none in (True, False, True):
        for m, o in ((model, a), (twin, b)):
            o.zero_grad(set_to_none=set_to_none)
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    assert_close_to_scale(list(model.parameters()), list(twin.parameters()), torch.float32)


def test_param_data_replaced_between_steps():
    p = torch.nn.Parameter(torch.ones(10))
    q = torch.nn.Parameter(torch.ones(10))
    a, b = fusedoptim.SGD([p], lr=0.1, momentum=0.9), torch.optim.SGD([q], lr=0.1, momentum=0.9)
    for step in range(4):
        if step == 2:
            p.data = p.data.clone() * 2
            q.data = q.data.clone() * 2
        p.grad = torch.full((10,), 0.5)
        q.grad = torch.full((10,), 0.5)
        a.step()
        b.step()
    torch.testing.assert_close(p.detach(), q.detach())
