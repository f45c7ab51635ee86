"""EarlyStopping against hand-worked sequences, one option at a time, then the order of
the checks, resume, restore and input handling. Values are compared exactly (no
arithmetic happens on them except the min_delta margins, chosen to be exact)."""

import json
import logging
import math

import numpy as np
import pytest
import torch

from fusedoptim import EarlyStopping


def run(stopper, values, model=None):
    """The returned flags of step() for each value, stopping at the first True."""
    flags = []
    for v in values:
        flags.append(stopper.step(v, model=model))
        if flags[-1]:
            break
    return flags


def test_patience_min_mode():
    s = EarlyStopping(mode="min", patience=2)
    assert run(s, [1.0, 0.9, 0.95, 0.92, 0.5]) == [False, False, False, True]
    assert (s.best, s.best_epoch, s.stopped_epoch, s.wait) == (0.9, 1, 3, 2)
    assert s.should_stop and s.reason.startswith("patience")


def test_patience_max_mode_and_equal_is_not_improvement():
    s = EarlyStopping(mode="max", patience=2)
    assert run(s, [0.5, 0.6, 0.6, 0.59]) == [False, False, False, True]
    assert (s.best, s.best_epoch, s.stopped_epoch) == (0.6, 1, 3)


def test_patience_zero_stops_at_first_non_improvement():
    s = EarlyStopping(patience=0)
    assert run(s, [3.0, 2.0, 2.5]) == [False, False, True]


def test_min_delta_abs():
    s = EarlyStopping(patience=3, min_delta=0.25)
    # 1.0 -> 0.875 is not < 1.0 - 0.25; 0.5 is; then 0.375 is not < 0.25.
    assert run(s, [1.0, 0.875, 0.5, 0.375, 0.375, 0.375]) == [False] * 5 + [True]
    assert (s.best, s.best_epoch, s.stopped_epoch) == (0.5, 2, 5)


def test_min_delta_rel_with_negative_values():
    s = EarlyStopping(mode="min", patience=5, min_delta=0.125, threshold_mode="rel")
    s.step(-8.0)  # the first finite value always improves on +inf
    assert (s.best, s.wait) == (-8.0, 0)
    s.step(-8.5)  # margin 0.125 * 8 = 1: needs < -9
    assert (s.best, s.wait) == (-8.0, 1)
    s.step(-7.5)  # worse; torch's best * (1 - d) = -7 would accept it
    assert (s.best, s.wait) == (-8.0, 2)
    s.step(-9.5)
    assert (s.best, s.wait) == (-9.5, 0)


def test_min_delta_rel_max_mode():
    s = EarlyStopping(mode="max", patience=1, min_delta=0.5, threshold_mode="rel")
    assert run(s, [2.0, 2.5, 3.5]) == [False, True]  # 2.5 is not > 2 + 1
    s = EarlyStopping(mode="max", patience=1, min_delta=0.5, threshold_mode="rel")
    assert run(s, [2.0, 3.5, 3.5]) == [False, False, True]
    assert s.best == 3.5


def test_baseline_counts_against_patience_until_beaten():
    s = EarlyStopping(patience=2, baseline=0.5)
    assert run(s, [0.9, 0.8, 0.7]) == [False, True]
    assert (s.best, s.best_epoch, s.stopped_epoch) == (0.8, 1, 1)
    s = EarlyStopping(patience=2, baseline=0.5)
    assert run(s, [0.9, 0.4, 0.45, 0.42]) == [False, False, False, True]
    assert (s.best, s.best_epoch, s.stopped_epoch) == (0.4, 1, 3)


def test_start_from_epoch_ignores_early_calls():
    s = EarlyStopping(patience=2, start_from_epoch=2)
    assert run(s, [math.nan, 100.0, 1.0, 2.0, 3.0]) == [False] * 4 + [True]
    assert (s.best, s.best_epoch, s.stopped_epoch, s.epoch) == (1.0, 2, 4, 5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_check_finite(bad):
    s = EarlyStopping(patience=10)
    assert run(s, [1.0, bad]) == [False, True]
    assert s.reason.startswith("non-finite") and (s.best, s.stopped_epoch) == (1.0, 1)


def test_check_finite_off_treats_nan_as_no_improvement():
    s = EarlyStopping(patience=2, check_finite=False)
    assert run(s, [1.0, math.nan, math.nan]) == [False, False, True]
    assert s.reason.startswith("patience") and s.best == 1.0


def test_stopping_threshold_is_strict_and_records_best():
    s = EarlyStopping(patience=10, stopping_threshold=0.1)
    assert run(s, [0.5, 0.1, 0.05]) == [False, False, True]
    assert s.reason.startswith("stopping_threshold")
    assert (s.best, s.best_epoch, s.stopped_epoch) == (0.05, 2, 2)


def test_divergence_threshold_is_strict():
    s = EarlyStopping(mode="max", patience=10, divergence_threshold=0.2)
    assert run(s, [0.5, 0.2, 0.1]) == [False, False, True]
    assert s.reason.startswith("divergence_threshold") and s.best == 0.5


def test_order_of_checks():
    # non-finite before the thresholds: -inf would beat the stopping threshold
    s = EarlyStopping(stopping_threshold=0.1, divergence_threshold=5.0)
    assert s.step(-math.inf) and s.reason.startswith("non-finite")
    # stopping threshold before improvement bookkeeping and patience
    s = EarlyStopping(patience=0, stopping_threshold=0.1)
    assert not s.step(1.0)
    assert s.step(0.05) and s.reason.startswith("stopping_threshold")
    # divergence before improvement: the very first value can diverge
    s = EarlyStopping(divergence_threshold=10.0)
    assert s.step(20.0) and s.reason.startswith("divergence_threshold")
    assert s.best == math.inf and s.best_epoch is None
    # divergence before patience, even when patience also runs out on this call
    s = EarlyStopping(patience=1, divergence_threshold=10.0)
    assert run(s, [1.0, 11.0]) == [False, True]
    assert s.reason.startswith("divergence_threshold")
    # improvement before patience: an improving call never stops on patience
    s = EarlyStopping(patience=0)
    assert run(s, [3.0, 2.0, 1.0]) == [False, False, False]


def test_calls_after_stopping_change_nothing():
    s = EarlyStopping(patience=0)
    run(s, [1.0, 2.0])
    before = s.state_dict()
    assert s.step(0.0) is True
    assert s.state_dict() == before


def values_sequence():
    rng = np.random.default_rng(0)
    return list(1.0 / np.arange(1, 40) + rng.normal(scale=0.02, size=39))


@pytest.mark.parametrize("split", [1, 5, 9, 13])
def test_resume_equals_uninterrupted(split):
    options = dict(patience=4, min_delta=0.001, baseline=0.9, start_from_epoch=1)
    values = values_sequence()
    whole = EarlyStopping(**options)
    run(whole, values)
    assert whole.should_stop

    first = EarlyStopping(**options)
    run(first, values[:split])
    saved = json.loads(json.dumps(first.state_dict()))  # plain Python values
    second = EarlyStopping(**options)
    second.load_state_dict(saved)
    run(second, values[split:])
    assert second.state_dict() == whole.state_dict()


def test_load_state_dict_checks():
    s = EarlyStopping(mode="min")
    with pytest.raises(ValueError, match="mode"):
        s.load_state_dict(EarlyStopping(mode="max").state_dict())
    with pytest.raises(ValueError, match="missing"):
        s.load_state_dict({"mode": "min", "best": 1.0})


def model_with(value):
    m = torch.nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.fill_(value)
        m.bias.fill_(value)
    return m


def set_model(m, value):
    with torch.no_grad():
        m.weight.fill_(value)
        m.bias.fill_(value)


def test_restore_best_weights_on_stop():
    model = model_with(0.0)
    s = EarlyStopping(patience=2, restore_best_weights=True)
    for epoch, v in enumerate([1.0, 0.5, 0.7, 0.8]):
        set_model(model, float(epoch))
        if s.step(v, model=model):
            break
    assert s.stopped_epoch == 3
    assert float(model.weight.detach()[0, 0]) == 1.0  # the weights of epoch 1


def test_restore_when_max_epochs_ran_out():
    model = model_with(0.0)
    s = EarlyStopping(patience=10, restore_best_weights=True)
    assert not s.restore(model)  # nothing recorded yet
    for epoch, v in enumerate([1.0, 0.5, 0.7]):
        set_model(model, float(epoch))
        assert not s.step(v, model=model)
    assert float(model.weight.detach()[0, 0]) == 2.0
    assert s.restore(model)
    assert float(model.weight.detach()[0, 0]) == 1.0 and float(model.bias.detach()[0]) == 1.0


def test_weights_copy_is_not_a_view_and_state_dict_holds_it_only_if_asked():
    model = model_with(3.0)
    s = EarlyStopping(restore_best_weights=True)
    s.step(1.0, model=model)
    set_model(model, 9.0)
    assert float(s.best_weights["weight"][0, 0]) == 3.0
    assert "best_weights" not in s.state_dict()
    other = EarlyStopping(restore_best_weights=True)
    other.load_state_dict(s.state_dict(include_weights=True))
    assert other.restore(model) and float(model.weight.detach()[0, 0]) == 3.0


def test_restore_best_weights_needs_the_model():
    s = EarlyStopping(restore_best_weights=True)
    with pytest.raises(ValueError, match="model"):
        s.step(1.0)


@pytest.mark.parametrize(
    "value",
    [
        0.5,
        1,
        np.float32(0.5),
        np.float64(0.5),
        np.array(0.5),
        np.array([0.5]),
        torch.tensor(0.5),
        torch.tensor([0.5]),
        torch.tensor(0.5, dtype=torch.float16),
        torch.tensor(0.5, requires_grad=True),  # a loss straight from the graph
    ],
)
def test_value_kinds(value):
    s = EarlyStopping()
    s.step(value)
    assert s.best == 0.5 or (s.best == 1.0 and value == 1)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (torch.tensor([1.0, 2.0]), ValueError),
        (np.ones(2), ValueError),
        ("1.0", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_bad_values(value, error):
    with pytest.raises(error):
        EarlyStopping().step(value)


class _NoRead(torch.Tensor):
    def item(self):
        raise AssertionError("the value was read")


def test_value_is_not_read_before_it_is_needed():
    probe = torch.tensor(1.0).as_subclass(_NoRead)
    s = EarlyStopping(patience=0, start_from_epoch=2)
    s.step(probe)
    s.step(probe)
    with pytest.raises(AssertionError, match="was read"):
        s.step(probe)
    s = EarlyStopping(patience=0)
    run(s, [1.0, 2.0])
    assert s.step(probe)  # stopped: not read either


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "minimum"}, "mode"),
        ({"patience": -1}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"min_delta": math.inf}, "min_delta"),
        ({"threshold_mode": "relative"}, "threshold_mode"),
        ({"baseline": math.nan}, "baseline"),
        ({"start_from_epoch": -2}, "start_from_epoch"),
        ({"stopping_threshold": math.nan}, "stopping_threshold"),
    ],
)
def test_option_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_verbose_logs_and_reset():
    s = EarlyStopping(patience=0, verbose=True)
    logger = logging.getLogger("fusedoptim.early_stopping")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        run(s, [1.0, 2.0])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    messages = [r.getMessage() for r in records]
    assert any("new best" in m for m in messages) and any("stopping" in m for m in messages)
    s.reset()
    assert (s.best, s.best_epoch, s.wait, s.epoch, s.should_stop) == (math.inf, None, 0, 0, False)
