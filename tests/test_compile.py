"""torch.compile around fusedoptim: each fused call is one clean graph break.

A compiled training step that calls ``opt.step()`` (or ``clip_grad_norm_``,
or the functional API) must break exactly once there, trace nothing inside,
compile once and never recompile from step to step, warn about nothing, and
give the eager results bit for bit. Measured with dynamo's own counters
(``torch._dynamo.utils.counters``) and ``error_on_recompile``. The "eager"
backend keeps the check fast and exact: graph breaks and recompiles are
dynamo's decisions, whatever the backend compiles the graphs with.
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch import nn

import fusedoptim

dynamo = pytest.importorskip("torch._dynamo")
from torch._dynamo.utils import counters  # noqa: E402

STEPS = 6

OPTIMIZERS = [
    (fusedoptim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    (fusedoptim.Adam, {"lr": 1e-2, "amsgrad": True, "l1": 1e-4}),
    (fusedoptim.AdamW, {"lr": 1e-2, "max_grad_norm": 0.5}),
]


@pytest.fixture
def fresh_dynamo(caplog):
    """A reset dynamo that raises on any recompile; yields the warnings seen
    (Python warnings and dynamo's logged warnings)."""
    dynamo.reset()
    counters.clear()
    seen: list[str] = []
    with dynamo.config.patch(error_on_recompile=True), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="torch"):
            yield seen
        seen.extend(str(x.message) for x in w)
        seen.extend(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    dynamo.reset()


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    # 20 params: 10 weights and 10 biases, as in the report that found the breaks.
    return nn.Sequential(*[nn.Sequential(nn.Linear(12, 12), nn.Tanh()) for _ in range(10)])


def _fusedoptim_breaks() -> dict[str, int]:
    """Graph-break reasons that name fusedoptim code, with their counts."""
    return {
        reason: count
        for reason, count in counters["graph_break"].items()
        if "fusedoptim" in reason or "FusedOptimizer" in reason or "clip_grad_norm_" in reason
    }


def _assert_one_clean_break_each(names: list[str]) -> None:
    """Each named fusedoptim call broke the graph once, when first compiled,
    and nothing of fusedoptim was traced. (A break on the first instruction of
    a resumed frame, where dynamo has nothing to compile, is not counted.)"""
    breaks = _fusedoptim_breaks()
    assert all(count == 1 for count in breaks.values()), breaks
    assert all("marked as skipped" in reason for reason in breaks), breaks
    assert any(name in reason for reason in breaks for name in names), breaks
    assert len(breaks) <= len(names), breaks


def _train(model, opt, step_fn, x):
    losses = []
    for _ in range(STEPS):
        losses.append(step_fn(model, opt, x).detach())
    return torch.stack(losses), [p.detach().clone() for p in model.parameters()]


def _step(model, opt, x):
    loss = model(x).square().mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_compiled_training_step_breaks_once_at_the_step(fresh_dynamo, cls, kwargs):
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(1))
    eager_model = _model(0)
    eager = _train(eager_model, cls(eager_model.parameters(), **kwargs), _step, x)

    model = _model(0)
    opt = cls(model.parameters(), **kwargs)
    compiled = _train(model, opt, torch.compile(_step, backend="eager"), x)

    torch.testing.assert_close(compiled[0], eager[0], rtol=0, atol=0)
    for ours, reference in zip(compiled[1], eager[1]):
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)
    _assert_one_clean_break_each(["FusedOptimizer.step"])
    assert fresh_dynamo == []


def test_step_hooks_still_run_under_compile(fresh_dynamo):
    model = _model(0)
    opt = fusedoptim.AdamW(model.parameters(), lr=1e-3)
    calls = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    compiled = torch.compile(_step, backend="eager")
    for _ in range(3):
        compiled(model, opt, torch.randn(4, 12))
    assert calls == ["pre", "post"] * 3
    assert opt.state[next(model.parameters())]["step"].item() == 3


def test_compiled_clip_grad_norm_breaks_once(fresh_dynamo):
    def clipped_step(model, opt, x):
        loss = model(x).square().mean()
        loss.backward()
        norm = fusedoptim.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        opt.zero_grad()
        return loss + 0 * norm

    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(2))
    eager_model = _model(3)
    eager = _train(eager_model, fusedoptim.SGD(eager_model.parameters(), lr=0.1), clipped_step, x)
    model = _model(3)
    opt = fusedoptim.SGD(model.parameters(), lr=0.1)
    compiled = _train(model, opt, torch.compile(clipped_step, backend="eager"), x)

    for ours, reference in zip(compiled[1], eager[1]):
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)
    _assert_one_clean_break_each(["clip_grad_norm_", "FusedOptimizer.step"])
    assert fresh_dynamo == []


def test_compiled_functional_call_breaks_once(fresh_dynamo):
    def functional_step(params, grads, bufs):
        fusedoptim.functional.sgd(
            params, grads, bufs, weight_decay=0.0, momentum=0.9, lr=0.1, dampening=0.0,
            nesterov=False, maximize=False,
        )  # fmt: skip
        return params[0].sum()

    gen = torch.Generator().manual_seed(4)
    params = [torch.randn(n, generator=gen) for n in (3, 1023)]
    grads = [torch.randn(p.shape, generator=gen) for p in params]
    expected = [p.clone() for p in params]
    fusedoptim.functional.sgd(
        expected, grads, [None, None], weight_decay=0.0, momentum=0.9, lr=0.1, dampening=0.0,
        nesterov=False, maximize=False,
    )  # fmt: skip
    compiled = torch.compile(functional_step, backend="eager")
    compiled(params, grads, [None, None])
    for ours, reference in zip(params, expected):
        torch.testing.assert_close(ours, reference, rtol=0, atol=0)
    _assert_one_clean_break_each(["sgd"])
    assert fresh_dynamo == []


def test_compiled_scaler_calls_break_once_each(fresh_dynamo):
    from fusedoptim.preprocessing import StandardScaler

    def normalize(scaler, x):
        scaler.partial_fit(x)
        return scaler.transform(x) * 2

    gen = torch.Generator().manual_seed(6)
    batches = [torch.randn(32, 5, generator=gen) for _ in range(4)]
    eager_scaler, scaler = StandardScaler(), StandardScaler()
    compiled = torch.compile(normalize, backend="eager")
    for x in batches:
        torch.testing.assert_close(
            compiled(scaler, x), normalize(eager_scaler, x.clone()), rtol=0, atol=0
        )
    breaks = {r: c for r, c in counters["graph_break"].items() if "Scaler" in r}
    assert breaks and all(count == 1 for count in breaks.values()), breaks
    assert fresh_dynamo == []
