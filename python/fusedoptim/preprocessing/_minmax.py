"""MinMaxScaler: scikit-learn's, for data streamed in batches, on numpy or torch."""

from __future__ import annotations

import math
import numbers

import torch

from fusedoptim import _backend
from fusedoptim._opaque import opaque_to_dynamo
from fusedoptim.metrics._inputs import check_flag
from fusedoptim.preprocessing._base import StreamingScaler
from fusedoptim.preprocessing._inputs import rounded
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

    @opaque_to_dynamo
    def fit(self, X, y=None):
        """Computes the per-feature min and max of X (forgetting earlier data)."""
        return self._absorb(X, None, reset=True)

    @opaque_to_dynamo
    def partial_fit(self, X, y=None):
        """Adds the batch X to the statistics. A refused batch (wrong feature count, inf,
        non-numeric) raises ValueError/TypeError and changes nothing."""
        return self._absorb(X, None, reset=False)

    @opaque_to_dynamo
    def transform(self, X, *, out=None):
        """``X * scale_ + min_`` (clipped with clip=True), in X's float dtype, NaN kept.
        Writes into X when the scaler has ``copy=False`` (numpy float arrays, torch
        tensors); ``out`` names the array to write (X's kind, shape and dtype; may be X)."""
        check_flag(self.copy, "copy")
        return self._apply(X, inverse=False, copy=self.copy, out=out)

    @opaque_to_dynamo
    def inverse_transform(self, X, *, out=None):
        """``(X - min_) / scale_`` (see transform for copy and out)."""
        check_flag(self.copy, "copy")
        return self._apply(X, inverse=True, copy=self.copy, out=out)

    @opaque_to_dynamo
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

    def _attributes(self, running):
        # [note: minmax dtype] scikit-learn computes these in the data's dtype, so they are
        # computed here in that dtype too, operation for operation (torch's CPU operations
        # round each result as numpy does), from the exact min and max: a value of the
        # data's dtype is exact in the float64 statistics.
        dtype = running.dtype
        stats = torch.from_numpy(running.stats)
        seen = stats[:, WEIGHT] != 0
        data_min = torch.where(seen, stats[:, MIN], torch.nan).to(dtype)
        data_max = torch.where(seen, stats[:, MAX], torch.nan).to(dtype)
        data_range = data_max - data_min
        low, high = (rounded(v, dtype) for v in self.feature_range)
        # scikit-learn's _handle_zeros_in_scale: a range below 10 eps counts as zero.
        divisor = torch.where(data_range < 10 * torch.finfo(dtype).eps, 1.0, data_range)
        scale = (high - low) / divisor
        return {
            "data_min_": data_min,
            "data_max_": data_max,
            "data_range_": data_range,
            "scale_": scale,
            "min_": low - data_min * scale,
            "n_samples_seen_": int(running.n_rows),
        }

    def _plan(self, dtype, inverse):
        attributes = self._host_attributes()
        scale = attributes["scale_"].to(torch.float64).numpy()
        shift = attributes["min_"].to(torch.float64).numpy()
        # numpy computes `X *= scale_` in the promotion of both dtypes (see ops/scaler.h).
        math_dtype = torch.promote_types(dtype, self._running.dtype)
        if inverse:
            return Plan(_backend.SCALER_SUBTRACT_DIVIDE, shift, scale, math_dtype)
        clip = None
        if self.clip:
            clip = tuple(float(rounded(v, dtype)) for v in self.feature_range)
        return Plan(_backend.SCALER_MULTIPLY_ADD, scale, shift, math_dtype, clip)

    def _repr_args(self):
        defaults = {"feature_range": (0, 1), "copy": True, "clip": False}
        return [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
