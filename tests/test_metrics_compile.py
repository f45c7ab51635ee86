"""Stateful metrics under torch.compile, measured with dynamo's own counters.

update, compute and sync are each one opaque call (see [note: metrics under
torch.compile] in metric.py; reset is traced): a compiled step calling them gets at
most one graph break per call site, attributable to the metric method by name, no
recompiles from batch to batch (error_on_recompile), no warnings (Python's or
dynamo's log), and the eager results. backend="eager" runs the captured graphs with
torch's own kernels, so the compiled and eager runs compute the same numbers and are
compared exactly.
"""

import contextlib
import logging
import os
import subprocess
import sys
import warnings

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import fusedoptim.metrics as fm

C = 3
BATCH = 16
OUTPUTS = 2

CLASSIFICATION = [
    lambda: fm.ConfusionMatrix(C),
    lambda: fm.ConfusionMatrix(C, normalize="true"),
    lambda: fm.Accuracy(C),
    lambda: fm.Precision(C, average="micro"),
    lambda: fm.Recall(C, average=None),
    lambda: fm.F1Score(C),
    lambda: fm.FBetaScore(C, beta=2.0, average="weighted"),
]
REGRESSION = [
    lambda: fm.MeanSquaredError(OUTPUTS),
    lambda: fm.MeanAbsoluteError(OUTPUTS),
    lambda: fm.R2Score(OUTPUTS),
]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def watched_dynamo():
    """Fresh dynamo counters and caches, recompiles as errors; yields the list of
    warnings seen (Python warnings and WARNING records of torch's loggers)."""
    torch._dynamo.reset()
    counters.clear()
    records = _Records()
    torch_log = logging.getLogger("torch")
    torch_log.addHandler(records)
    seen = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch._dynamo.config.patch(error_on_recompile=True):
                yield seen
        seen.extend(str(w.message) for w in caught)
        seen.extend(records.messages)
    finally:
        torch_log.removeHandler(records)
        torch._dynamo.reset()


def graph_breaks():
    return sum(counters["graph_break"].values())


def assert_breaks_only_at(*qualnames):
    """Every graph break names one of the metric methods (their __qualname__)."""
    for reason in counters["graph_break"]:
        assert any(name in reason for name in qualnames), reason


def batches(regression, n=4):
    gen = torch.Generator().manual_seed(0)
    for _ in range(n):
        x = torch.randn(BATCH, 4, generator=gen)
        if regression:
            yield x, torch.randn(BATCH, OUTPUTS, generator=gen)
        else:
            yield x, torch.randint(0, C, (BATCH,), generator=gen)


def assert_same_result(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), (a, b)
    else:
        assert a == b


@pytest.mark.parametrize("make", CLASSIFICATION + REGRESSION)
def test_compiled_training_step_breaks_once_at_update(make):
    """A compiled step (forward, then metric.update) over same-shape batches: one graph
    break, at update; no recompiles; no warnings; the eager metric's result."""
    compiled_metric, eager_metric = make(), make()
    regression = not isinstance(compiled_metric, fm.ConfusionMatrix)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, OUTPUTS if regression else C)

    def step(metric, x, y):
        out = model(x)
        metric.update(y, out)
        return out.sum()

    compiled = torch.compile(step, backend="eager")
    with watched_dynamo() as seen:
        for x, y in batches(regression):
            assert torch.equal(compiled(compiled_metric, x, y), step(eager_metric, x, y))
        assert graph_breaks() == 1, dict(counters["graph_break"])
        assert_breaks_only_at(type(compiled_metric).update.__qualname__)
        # The forward before the break and the sum after it; nothing else captured.
        assert counters["stats"]["unique_graphs"] <= 2, dict(counters["stats"])
    assert seen == []
    assert compiled_metric.state_dict()["updates"] == 4
    assert_same_result(compiled_metric.compute(), eager_metric.compute())


def test_compiled_update_with_torchmetrics_keywords():
    metric, eager = fm.F1Score(C), fm.F1Score(C)

    def step(metric, logits, labels):
        metric.update(preds=logits, target=labels)
        return logits.sum()

    compiled = torch.compile(step, backend="eager")
    with watched_dynamo() as seen:
        for x, y in batches(False):
            compiled(metric, x[:, :C], y)
            step(eager, x[:, :C], y)
        assert graph_breaks() == 1
        assert_breaks_only_at("ConfusionMatrix.update")
    assert seen == []
    assert torch.equal(metric.compute(), eager.compute())


@pytest.mark.parametrize("make", [CLASSIFICATION[5], REGRESSION[2]])
def test_compiled_update_compute_sync_reset(make):
    """update, compute, sync and reset called from compiled code, over three epochs: at
    most one break per call, all at those methods; no recompiles, no warnings, the
    eager values. (A break inside a loop makes dynamo run the whole frame eagerly,
    whatever the call, so the calls are not in a loop here.)"""
    compiled_metric, eager_metric = make(), make()
    regression = not isinstance(compiled_metric, fm.ConfusionMatrix)
    cls = type(compiled_metric)
    methods = (cls.update.__qualname__, cls.compute.__qualname__, "Metric.sync")

    def epoch(metric, x, y):
        metric.update(y, x[:, :OUTPUTS] if regression else x[:, :C])
        value = metric.compute() * 2
        metric.sync()
        metric.reset()
        return value

    compiled = torch.compile(epoch, backend="eager")
    with watched_dynamo() as seen:
        for x, y in batches(regression, n=3):
            assert_same_result(compiled(compiled_metric, x, y), epoch(eager_metric, x, y))
        assert 1 <= graph_breaks() <= len(methods), dict(counters["graph_break"])
        assert_breaks_only_at(*methods)
    assert seen == []
    assert compiled_metric.state_dict()["updates"] == 0  # reset ran


_FALLBACK = """
import torch, torch._dynamo
from torch._dynamo.utils import counters
disable_dynamo = torch._disable_dynamo
del torch._disable_dynamo  # as in a torch without it: fusedoptim imports without it
import fusedoptim.metrics as fm
torch._disable_dynamo = disable_dynamo
metric, eager = fm.R2Score(), fm.R2Score()
def step(metric, x, y):
    metric.update(y, x)
    return x.sum()
compiled = torch.compile(step, backend="eager")
gen = torch.Generator().manual_seed(0)
with torch._dynamo.config.patch(error_on_recompile=True):
    for _ in range(4):
        x, y = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
        compiled(metric, x, y)
        step(eager, x, y)
reasons = list(counters["graph_break"])
assert sum(counters["graph_break"].values()) == 1, reasons
assert "_RegressionMetric.update" in reasons[0], reasons
assert torch.equal(metric.compute(), eager.compute())
print("ok")
"""


def test_fallback_to_torch_compiler_disable():
    """Where torch has no _disable_dynamo, torch.compiler.disable makes update opaque."""
    env = dict(os.environ, PYTHONWARNINGS="error")
    done = subprocess.run(
        [sys.executable, "-c", _FALLBACK], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
