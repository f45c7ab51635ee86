"""Early stopping with the semantics Keras and Lightning share, framework-free.

Each ``step(value)`` is one epoch (one evaluation). The checks run in this order,
the first that applies decides the call:

1. ``check_finite``: a NaN or infinite value stops at once.
2. ``stopping_threshold``: a value better than it stops (and is recorded as the best
   if it improves on it).
3. ``divergence_threshold``: a value worse than it stops.
4. improvement: a value better than ``best`` by more than ``min_delta`` becomes the
   best (and, with ``restore_best_weights``, its weights are copied); ``wait`` goes
   back to 0, unless a ``baseline`` is set and the value does not beat it.
5. patience: otherwise ``wait`` grows by one, and reaching ``patience`` stops
   (``patience=0`` stops at the first call without improvement, as in Keras and
   Lightning).

Calls before ``start_from_epoch`` are counted as epochs and otherwise ignored.

[note: baseline] Keras resets ``wait`` only when a value beats both the best and the
baseline, but then never stops while values keep improving below the baseline. Here
such a call is recorded as the best (so its weights can be restored) yet counts
against patience: training stops after ``patience`` calls that fail to beat the
baseline, which is what the baseline is for.

[note: relative min_delta] With ``threshold_mode="rel"`` the margin is
``min_delta * |best|``, which shrinks the right way for negative values (torch's
ReduceLROnPlateau uses ``best * (1 - min_delta)``, which for a negative best in "min"
mode accepts worse values). While ``best`` is infinite (no value yet) any finite
value improves.

[note: syncs] A 0-d CUDA tensor is read (one device-to-host copy) only when its
value is needed: not for calls before ``start_from_epoch``, nor after stopping.
The weights copy is ``tensor.clone()`` on the tensors' own devices, which does not
wait for the GPU.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
import torch

logger = logging.getLogger(__name__)

_MODES = ("min", "max")
_THRESHOLD_MODES = ("abs", "rel")


def _as_float(value):
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"value: expected a single number, got a tensor of shape {tuple(value.shape)}"
            )
        return float(value.detach().reshape(()).item())
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(
                f"value: expected a single number, got an array of shape {value.shape}"
            )
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"value: expected a real number, got {type(value).__name__}")
    return float(value)


def _optional_float(value, name):
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


class EarlyStopping:
    """Tells a training loop when to stop; see the module docstring for the rules.

    Public state: ``best`` (best value so far; +inf/-inf before any), ``best_epoch``,
    ``wait``, ``epoch`` (calls so far), ``stopped_epoch``, ``should_stop``, ``reason``.
    """

    def __init__(
        self,
        mode="min",
        patience=3,
        min_delta=0.0,
        *,
        threshold_mode="abs",
        baseline=None,
        start_from_epoch=0,
        stopping_threshold=None,
        divergence_threshold=None,
        check_finite=True,
        restore_best_weights=False,
        verbose=False,
    ):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if threshold_mode not in _THRESHOLD_MODES:
            raise ValueError(
                f"threshold_mode must be one of {_THRESHOLD_MODES}, got {threshold_mode!r}"
            )
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if (
            isinstance(start_from_epoch, bool)
            or not isinstance(start_from_epoch, numbers.Integral)
            or start_from_epoch < 0
        ):
            raise ValueError(f"start_from_epoch must be an integer >= 0, got {start_from_epoch!r}")
        min_delta = float(min_delta)
        if not min_delta >= 0 or math.isinf(min_delta):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.mode = mode
        self.patience = int(patience)
        self.min_delta = min_delta
        self.threshold_mode = threshold_mode
        self.baseline = _optional_float(baseline, "baseline")
        self.start_from_epoch = int(start_from_epoch)
        self.stopping_threshold = _optional_float(stopping_threshold, "stopping_threshold")
        self.divergence_threshold = _optional_float(divergence_threshold, "divergence_threshold")
        self.check_finite = bool(check_finite)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = bool(verbose)
        self.reset()

    # -- state -------------------------------------------------------------------------

    def reset(self):
        """Back to the state before the first call (options are kept)."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.wait = 0
        self.epoch = 0
        self.stopped_epoch = None
        self.should_stop = False
        self.reason = None
        self.best_weights = None

    _COUNTERS = ("best", "best_epoch", "wait", "epoch", "stopped_epoch", "should_stop", "reason")

    def state_dict(self, include_weights=False):
        """Everything needed to resume; the best-weights copy only if asked."""
        state = {name: getattr(self, name) for name in self._COUNTERS}
        state["mode"] = self.mode
        if include_weights:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state):
        if state.get("mode", self.mode) != self.mode:
            raise ValueError(
                f"state_dict was saved in mode {state['mode']!r}, this stopper uses {self.mode!r}"
            )
        missing = [name for name in self._COUNTERS if name not in state]
        if missing:
            raise ValueError(f"state_dict is missing {missing}")
        for name in self._COUNTERS:
            setattr(self, name, state[name])
        if "best_weights" in state:
            self.best_weights = state["best_weights"]

    # -- the check ---------------------------------------------------------------------

    def _better(self, value, reference, margin):
        return value < reference - margin if self.mode == "min" else value > reference + margin

    def _margin(self, reference):
        if self.threshold_mode == "abs":
            return self.min_delta
        return self.min_delta * abs(reference) if math.isfinite(reference) else 0.0

    def _improves(self, value, reference):
        return self._better(value, reference, self._margin(reference))

    def step(self, value, model=None):
        """Records one epoch's monitored value; returns True when training should stop.

        ``model``: anything with ``state_dict()``/``load_state_dict()``; needed for
        ``restore_best_weights``. Once stopped, further calls return True and change
        nothing.
        """
        if self.should_stop:
            return True
        epoch = self.epoch
        self.epoch += 1
        if epoch < self.start_from_epoch:
            return False
        value = _as_float(value)

        if self.check_finite and not math.isfinite(value):
            return self._stop(
                epoch,
                model,
                f"non-finite: value {value} at epoch {epoch} "
                f"(best {self.best} at epoch {self.best_epoch})",
            )
        if self.stopping_threshold is not None and self._better(
            value, self.stopping_threshold, 0.0
        ):
            if self._improves(value, self.best):
                self._record_best(value, epoch, model)
            return self._stop(
                epoch,
                model,
                f"stopping_threshold: value {value} at epoch "
                f"{epoch} beat {self.stopping_threshold}",
            )
        if self.divergence_threshold is not None and self._better(
            self.divergence_threshold, value, 0.0
        ):
            return self._stop(
                epoch,
                model,
                f"divergence_threshold: value {value} at epoch "
                f"{epoch} is worse than {self.divergence_threshold}",
            )
        if self._improves(value, self.best):
            self._record_best(value, epoch, model)
            if self.baseline is None or self._improves(value, self.baseline):
                self.wait = 0
                return False
        self.wait += 1
        if self.wait >= self.patience:
            return self._stop(
                epoch,
                model,
                f"patience: no improvement in {self.wait} epoch(s) "
                f"(best {self.best} at epoch {self.best_epoch})",
            )
        return False

    def _record_best(self, value, epoch, model):
        self.best = value
        self.best_epoch = epoch
        if self.restore_best_weights:
            if model is None:
                raise ValueError("restore_best_weights=True needs step(value, model=model)")
            self.best_weights = {
                k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                for k, v in model.state_dict().items()
            }
        if self.verbose:
            logger.info("epoch %d: new best value %s", epoch, value)

    def _stop(self, epoch, model, reason):
        self.should_stop = True
        self.stopped_epoch = epoch
        self.reason = reason
        if self.verbose:
            logger.info("stopping at epoch %d: %s", epoch, reason)
        if self.restore_best_weights and model is not None:
            self.restore(model)
        return True

    def restore(self, model):
        """Loads the best weights into ``model``; returns False if there are none yet
        (e.g. call it when max_epochs ran out before the stopper fired)."""
        if self.best_weights is None:
            return False
        model.load_state_dict(self.best_weights)
        if self.verbose:
            logger.info("restored the weights of epoch %s", self.best_epoch)
        return True
