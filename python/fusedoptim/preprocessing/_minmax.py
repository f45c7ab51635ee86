"""MinMaxScaler: scikit-learn's, for data streamed in batches, on numpy or torch."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from fusedoptim import _backend
from fusedoptim.metrics._inputs import check_flag
from fusedoptim.preprocessing._base import StreamingScaler
from fusedoptim.preprocessing._inputs import numpy_dtype
from fusedoptim.preprocessing._statistics import MAX, MIN, WEIGHT
from fusedoptim.preprocessing._transform import Plan


class MinMaxScaler(StreamingScaler):
    """Scale each feature to ``feature_range``: ``x * scale_ + min_``, with scikit-learn's
    arguments, attributes and results, fitted on data streamed in batches.

    ``fit``/``partial_fit`` read each batch once for the per-feature min and max (NaN
    ignored); ``transform`` writes each element once, NaN kept, clipped to feature_range
    with ``clip=True``. The attributes have the data's float dtype, as in scikit-learn
    (float32 data: float32 attributes); fitted on torch tensors they are torch tensors on
    that device, otherwise numpy arrays. ``n_samples_seen_`` counts rows, NaN or not.

    Attributes: ``data_min_``, ``data_max_``, ``data_range_``, ``scale_``, ``min_``,
    ``n_samples_seen_``, ``n_features_in_``.
    """

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False):
        self.feature_range = feature_range
        self.copy = copy
        self.clip = clip
        super().__init__()

    def _config(self):
        return (tuple(self.feature_range), bool(self.clip))

    def _check_params(self):
        check_flag(self.copy, "copy")
        check_flag(self.clip, "clip")
        fr = self.feature_range
        if not isinstance(fr, tuple) or len(fr) != 2:
            raise ValueError(f"feature_range must be a tuple (min, max), got {fr!r}")
        if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in fr):
            raise ValueError(f"feature_range must hold two finite numbers, got {fr!r}")
        if fr[0] >= fr[1]:
            raise ValueError(
                f"Minimum of desired feature range must be smaller than maximum. Got {fr}."
            )

    def fit(self, X, y=None):
        """Computes the per-feature min and max of X (forgetting earlier data)."""
        return self._absorb(X, None, reset=True)

    def partial_fit(self, X, y=None):
        """Adds the batch X to the statistics. A refused batch (wrong feature count, inf,
        non-numeric) raises ValueError/TypeError and changes nothing."""
        return self._absorb(X, None, reset=False)

    def transform(self, X, *, out=None):
        """``X * scale_ + min_`` (clipped with clip=True), in X's float dtype, NaN kept.
        Writes into X when the scaler has ``copy=False`` (numpy float arrays, torch
        tensors); ``out`` names the array to write (X's kind, shape and dtype; may be X)."""
        check_flag(self.copy, "copy")
        return self._apply(X, inverse=False, copy=self.copy, out=out)

    def inverse_transform(self, X, *, out=None):
        """``(X - min_) / scale_`` (see transform for copy and out)."""
        check_flag(self.copy, "copy")
        return self._apply(X, inverse=True, copy=self.copy, out=out)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    @property
    def data_min_(self):
        return self._attribute("data_min_")

    @property
    def data_max_(self):
        return self._attribute("data_max_")

    @property
    def data_range_(self):
        return self._attribute("data_range_")

    @property
    def scale_(self):
        return self._attribute("scale_")

    @property
    def min_(self):
        return self._attribute("min_")

    @property
    def n_samples_seen_(self):
        return self._attribute("n_samples_seen_")

    def _attributes(self):
        # [note: minmax dtype] scikit-learn computes these in the data's dtype, so they are
        # computed here with numpy in that dtype, operation for operation, from the exact
        # min and max (a float32 value is exact in the float64 statistics).
        dtype = numpy_dtype(self._dtype)
        seen = self._stats[:, WEIGHT] != 0
        data_min = np.where(seen, self._stats[:, MIN], np.nan).astype(dtype)
        data_max = np.where(seen, self._stats[:, MAX], np.nan).astype(dtype)
        data_range = data_max - data_min
        low, high = (np.asarray(v, dtype=dtype) for v in self.feature_range)
        divisor = data_range.copy()
        divisor[divisor < 10 * np.finfo(dtype).eps] = 1.0  # scikit-learn's _handle_zeros_in_scale
        scale = (high - low) / divisor
        return {
            "data_min_": data_min,
            "data_max_": data_max,
            "data_range_": data_range,
            "scale_": scale,
            "min_": low - data_min * scale,
            "n_samples_seen_": int(self._n_rows),
        }

    def _plan(self, dtype, inverse):
        attributes = self._numpy_attributes()
        scale = attributes["scale_"].astype(np.float64)
        shift = attributes["min_"].astype(np.float64)
        # numpy computes `X *= scale_` in float only when both are float32 (see ops/scaler.h).
        math_double = not (dtype == torch.float32 and self._dtype == torch.float32)
        if inverse:
            return Plan(_backend.SCALER_SUBTRACT_DIVIDE, shift, scale, math_double)
        clip = None
        if self.clip:
            clip = tuple(float(np.asarray(v, dtype=numpy_dtype(dtype))) for v in self.feature_range)
        return Plan(_backend.SCALER_MULTIPLY_ADD, scale, shift, math_double, clip)

    def _repr_args(self):
        defaults = {"feature_range": (0, 1), "copy": True, "clip": False}
        return [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
