"""What the scalers share: the running statistics and their life cycle (fit, partial_fit,
state_dict, sync), the fitted attributes in the kind of the data they were fitted on, and
the transform plumbing. Subclasses say which statistics they need, how attributes follow
from them (``_attributes``) and what a transform computes (``_plan``)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from fusedoptim.preprocessing import _distributed, _statistics, _transform
from fusedoptim.preprocessing._inputs import (
    NotFittedError,
    as_matrix,
    as_sample_weight,
    check_n_features,
)

_STATE_KEYS = {
    "scaler",
    "n_features_in_",
    "stats",
    "moments",
    "n_rows",
    "dtype",
    "weighted",
    "kind",
}
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64"}


class StreamingScaler:
    """Base class of StandardScaler and MinMaxScaler (not used on its own)."""

    # Whether the statistics need mean and M2 (else only counts, min and max).
    _needs_moments = False

    def __init__(self):
        self._forget()

    # -- state ---------------------------------------------------------------------------

    def _forget(self):
        self._set_state(None, False, 0, None, False)
        self._kind, self._device = "numpy", None

    def _set_state(self, stats, moments, n_rows, dtype, weighted):
        self._stats = stats  # (n_features, 5) float64, see _statistics.py; None: unfitted
        self._moments = moments  # the statistics include mean and M2
        self._n_rows = n_rows  # rows seen, NaN or not
        self._dtype = dtype  # the data's float dtype, promoted over batches
        self._weighted = weighted  # the last batch had sample weights
        self._cache = {}  # fitted attributes and transform parameters, see _cached

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

    def _check_moments(self):
        if self._needs_moments and not self._moments:
            raise ValueError(
                f"{self._name}: the statistics were computed with with_mean=False and "
                "with_std=False, so they hold no mean or variance; call fit again"
            )

    @property
    def n_features_in_(self) -> int:
        if self._stats is None:
            raise AttributeError(f"{type(self).__name__} has no n_features_in_ before fit")
        return self._stats.shape[0]

    def _check_fitted(self):
        if self._stats is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
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
        continuing = not reset and self._stats is not None
        if continuing:
            check_n_features(m, self.n_features_in_, self._name)
            self._check_moments()
        weights = as_sample_weight(sample_weight, m)
        # Statistics that hold moments keep them, whatever the flags say now.
        moments = self._moments if continuing else self._needs_moments
        batch = _statistics.of_batch(m.tensor, self._kernel_weights(weights), moments)
        rows, dtype = m.tensor.shape[0], m.tensor.dtype
        if not continuing:
            self._set_state(batch, moments, rows, dtype, weights is not None)
        else:
            stats = self._stats.copy()
            _statistics.merge(stats, batch)
            dtype = torch.promote_types(self._dtype, dtype)
            self._set_state(stats, self._moments, self._n_rows + rows, dtype, weights is not None)
        self._kind = m.kind
        self._device = m.tensor.device if m.kind == "torch" else None
        self._warn_if_only_nan()
        return self

    def _warn_if_only_nan(self):
        empty = np.flatnonzero(self._stats[:, _statistics.MIN] == np.inf)
        if empty.size:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if empty.size > 10 else "")
            warnings.warn(
                f"{self._name}: feature(s) {shown} held only NaN so far; their statistics "
                "are NaN and so is their transform",
                RuntimeWarning,
                stacklevel=3,
            )

    @property
    def _name(self):
        return type(self).__name__

    # -- fitted attributes ---------------------------------------------------------------

    def _attributes(self) -> dict:
        """The fitted attributes as numpy values (subclasses)."""
        raise NotImplementedError

    def _numpy_attributes(self) -> dict:
        self._check_moments()
        return self._cached("numpy", self._attributes)

    def _attribute(self, name):
        if self._stats is None:
            raise AttributeError(f"{self._name} has no attribute {name!r} before fit")
        attributes = self._cached(
            "presented",
            lambda: {k: self._present(v) for k, v in self._numpy_attributes().items()},
        )
        return attributes[name]

    def _present(self, value):
        """numpy values as they are, or as torch tensors on the fit data's device (as
        scikit-learn's array-API mode returns them for torch input); ints stay ints."""
        if value is None or isinstance(value, int) or self._kind == "numpy":
            return value
        return torch.from_numpy(np.array(value)).to(self._device)

    # -- transforms ----------------------------------------------------------------------

    def _plan(self, dtype: torch.dtype, inverse: bool) -> _transform.Plan:
        raise NotImplementedError

    def _device_params(self, dtype: torch.dtype, inverse: bool, device: torch.device):
        """(a, b) of the plan as tensors on ``device`` in its math dtype, kept until the
        statistics change (so a CUDA transform loop uploads them once)."""

        def make():
            plan = self._cached(("plan", dtype, inverse), lambda: self._plan(dtype, inverse))
            math_dtype = torch.float64 if plan.math_double else torch.float32
            return tuple(
                torch.as_tensor(v, dtype=math_dtype).to(device, non_blocking=True)
                for v in (plan.a, plan.b)
            )

        return self._cached(("params", dtype, inverse, device), make)

    def _apply(self, X, *, inverse: bool, copy: bool, out):
        self._check_fitted()
        m = as_matrix(X)
        check_n_features(m, self.n_features_in_, self._name)
        dst, result = _transform.destination(m, copy, out)
        x = m.tensor
        plan = self._cached(("plan", x.dtype, inverse), lambda: self._plan(x.dtype, inverse))
        _transform.run(x, dst, plan, lambda: self._device_params(x.dtype, inverse, x.device))
        return result

    # -- checkpoints and processes -------------------------------------------------------

    def state_dict(self) -> dict:
        """The statistics, as plain tensors and numbers (``torch.save``/``torch.load(...,
        weights_only=True)`` read it). The constructor arguments are not included."""
        fitted = self._stats is not None
        return {
            "scaler": self._name,
            "n_features_in_": self._stats.shape[0] if fitted else None,
            "stats": torch.from_numpy(self._stats.copy()) if fitted else None,
            "moments": self._moments,
            "n_rows": self._n_rows,
            "dtype": _DTYPE_NAMES.get(self._dtype),
            "weighted": self._weighted,
            "kind": self._kind,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores a ``state_dict()`` of the same scaler class (fitted or not)."""
        if not isinstance(state_dict, dict) or set(state_dict) != _STATE_KEYS:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"state_dict: expected keys {sorted(_STATE_KEYS)}, got {got}")
        if state_dict["scaler"] != self._name:
            raise ValueError(
                f"state_dict: holds a {state_dict['scaler']}, cannot load into {self._name}"
            )
        if state_dict["kind"] not in ("numpy", "torch"):
            raise ValueError(
                f"state_dict['kind']: expected 'numpy' or 'torch', got {state_dict['kind']!r}"
            )
        features = state_dict["n_features_in_"]
        if features is None:
            self._forget()
            return
        stats = torch.as_tensor(state_dict["stats"]).detach().cpu()
        if stats.dtype != torch.float64 or tuple(stats.shape) != (features, 5):
            raise ValueError(
                f"state_dict['stats']: expected a float64 tensor of shape ({features}, 5), "
                f"got {stats.dtype} {tuple(stats.shape)}"
            )
        dtypes = {name: dtype for dtype, name in _DTYPE_NAMES.items()}
        if state_dict["dtype"] not in dtypes:
            raise ValueError(
                f"state_dict['dtype']: expected 'float32' or 'float64', got {state_dict['dtype']!r}"
            )
        if self._needs_moments and not state_dict["moments"]:
            raise ValueError(
                f"state_dict: holds no mean or variance (saved with with_mean=False and "
                f"with_std=False), which this {self._name} needs"
            )
        self._set_state(
            stats.numpy().copy(),
            bool(state_dict["moments"]),
            int(state_dict["n_rows"]),
            dtypes[state_dict["dtype"]],
            bool(state_dict["weighted"]),
        )
        self._kind, self._device = state_dict["kind"], torch.device("cpu")

    def sync(self, group=None):
        """Merges the statistics of all processes of ``group`` (torch.distributed), so each
        holds the statistics of all their data. A no-op without torch.distributed. Call it
        once after fitting: a second call would count every sample again."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        merged = _distributed.gather(
            self._stats,
            self._moments,
            self._n_rows,
            self._dtype,
            self._weighted,
            self._name,
            group,
        )
        if merged is not None:
            self._set_state(*merged)
        return self

    def __repr__(self):
        return f"{self._name}({', '.join(self._repr_args())})"

    def _repr_args(self):
        return []
