"""What the scalers share: the running statistics and their life cycle (fit, partial_fit,
state_dict, sync), the fitted attributes in the kind of the data they were fitted on, and
the transform plumbing. Subclasses say which statistics they need, how the attributes
follow from them (``_attributes``) and what a transform computes (``_plan``)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from fusedoptim._opaque import opaque_to_dynamo
from fusedoptim.preprocessing import _checkpoint, _distributed, _statistics, _transform
from fusedoptim.preprocessing._inputs import (
    NotFittedError,
    as_matrix,
    as_sample_weight,
    check_n_features,
)
from fusedoptim.preprocessing._statistics import Running


class StreamingScaler:
    """Base class of StandardScaler and MinMaxScaler (not used on its own)."""

    # Whether the statistics need mean and M2 (else only counts, min and max).
    _needs_moments = False

    def __init__(self):
        self._set(None, "numpy", None)

    # -- state ---------------------------------------------------------------------------

    def _set(self, running: Running | None, kind: str, device):
        self._running = running  # None: not fitted
        self._kind = kind  # "numpy" or "torch": what the attributes are
        self._device = device  # the torch attributes' device
        self._cache = {}  # attributes and transform parameters, see _cached

    def _config(self) -> tuple:
        """The constructor arguments that attributes and transforms depend on."""
        return ()

    def _cached(self, key, make):
        """make(), computed once per state and configuration."""
        config = self._config()
        if self._cache.get("config") != config:
            self._cache = {"config": config}
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def _name(self):
        return type(self).__name__

    @property
    def n_features_in_(self) -> int:
        if self._running is None:
            raise AttributeError(f"{self._name} has no attribute 'n_features_in_' before fit")
        return self._running.n_features

    def _check_fitted(self):
        if self._running is None:
            raise NotFittedError(
                f"This {self._name} instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator."
            )

    def _check_moments(self, running: Running):
        if self._needs_moments and not running.moments:
            raise ValueError(
                f"{self._name}: the statistics were computed with with_mean=False and "
                "with_std=False, so they hold no mean or variance; call fit again"
            )

    # -- fitting -------------------------------------------------------------------------

    def _check_params(self):
        """Raises for invalid constructor arguments (checked at fit, as scikit-learn does)."""

    def _kernel_weights(self, weights):
        return weights

    def _absorb(self, X, sample_weight, *, reset: bool):
        """fit (reset) or partial_fit: every check runs and the batch's statistics are
        computed before the scaler changes, so a refused call leaves it as it was."""
        self._check_params()
        m = as_matrix(X)
        old = None if reset else self._running
        if old is not None:
            check_n_features(m, old.n_features, self._name)
            self._check_moments(old)
        weights = as_sample_weight(sample_weight, m)
        # Statistics that hold moments keep them, whatever the flags say now.
        moments = self._needs_moments if old is None else old.moments
        batch, shift = _statistics.of_batch(
            m.tensor,
            self._kernel_weights(weights),
            moments,
            None if old is None else old.shift_for(m.tensor),
        )
        rows, dtype, weighted = m.tensor.shape[0], m.tensor.dtype, weights is not None
        if old is None:
            running = Running(batch, shift, moments, rows, dtype, weighted)
        else:
            running = old.absorb(batch, shift, rows, dtype, weighted)
        self._set(running, m.kind, m.tensor.device if m.kind == "torch" else None)
        self._warn_if_only_nan()
        return self

    def _warn_if_only_nan(self):
        empty = np.flatnonzero(self._running.stats[:, _statistics.MIN] == np.inf)
        if empty.size:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
            warnings.warn(
                f"{self._name}: feature(s) {shown} held only NaN so far; their statistics "
                "are NaN and so is their transform",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- fitted attributes ---------------------------------------------------------------

    def _attributes(self, running: Running) -> dict:
        """The fitted attributes as numpy arrays or CPU tensors (subclasses)."""
        raise NotImplementedError

    def _host_attributes(self) -> dict:
        running = self._running
        self._check_moments(running)
        return self._cached("host", lambda: self._attributes(running))

    def _attribute(self, name):
        if self._running is None:
            raise AttributeError(f"{self._name} has no attribute {name!r} before fit")
        presented = self._cached(
            "presented", lambda: {k: self._present(v) for k, v in self._host_attributes().items()}
        )
        return presented[name]

    def _present(self, value):
        """numpy values (numpy and list input), or torch tensors on the fit data's device (as
        scikit-learn's array-API mode returns them for torch input); ints stay ints."""
        if value is None or isinstance(value, int):
            return value
        if self._kind == "numpy":
            if isinstance(value, torch.Tensor):
                return value.numpy()[()] if value.ndim == 0 else value.numpy()
            return value
        if isinstance(value, torch.Tensor):
            return value.to(self._device)
        return torch.from_numpy(np.array(value)).to(self._device)

    # -- transforms ----------------------------------------------------------------------

    def _plan(self, dtype: torch.dtype, inverse: bool) -> _transform.Plan:
        raise NotImplementedError

    def _cached_plan(self, dtype: torch.dtype, inverse: bool) -> _transform.Plan:
        return self._cached(("plan", dtype, inverse), lambda: self._plan(dtype, inverse))

    def _device_params(self, dtype: torch.dtype, inverse: bool, device: torch.device):
        """(a, b) of the plan as tensors on ``device`` in its math dtype, kept until the
        statistics change (so a CUDA transform loop uploads them once)."""

        def make():
            plan = self._cached_plan(dtype, inverse)
            return tuple(
                torch.as_tensor(v, dtype=plan.math_dtype).to(device, non_blocking=True)
                for v in (plan.a, plan.b)
            )

        return self._cached(("params", dtype, inverse, device), make)

    def _apply(self, X, *, inverse: bool, copy: bool, out):
        self._check_fitted()
        m = as_matrix(X)
        check_n_features(m, self.n_features_in_, self._name)
        dst, result = _transform.destination(m, copy, out)
        x = m.tensor
        plan = self._cached_plan(x.dtype, inverse)
        _transform.run(x, dst, plan, lambda: self._device_params(x.dtype, inverse, x.device))
        return result

    # -- checkpoints and processes -------------------------------------------------------

    def state_dict(self) -> dict:
        """The running statistics as plain tensors, numbers and strings (``torch.load(...,
        weights_only=True)`` reads them). The constructor arguments are not included."""
        return _checkpoint.to_state_dict(self._name, self._running, self._kind)

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores a ``state_dict()`` of the same scaler class (fitted or not). Torch
        attributes are then on the CPU until the next partial_fit."""
        running, kind = _checkpoint.from_state_dict(self._name, state_dict)
        if running is not None:
            self._check_moments(running)
        self._set(running, kind, torch.device("cpu") if kind == "torch" else None)

    @opaque_to_dynamo
    def sync(self, group=None):
        """Merges the statistics of all processes of ``group`` (torch.distributed), so each
        holds the statistics of all their data. A no-op without torch.distributed. Call it
        once after fitting: a second call would count every sample again."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        merged = _distributed.gather(self._running, self._name, group)
        if merged is not None:
            self._set(merged, self._kind, self._device)
        return self

    def __repr__(self):
        return f"{self._name}({', '.join(self._repr_args())})"

    def _repr_args(self):
        return []
