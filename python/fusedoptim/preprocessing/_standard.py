"""StandardScaler: scikit-learn's, for data streamed in batches, on numpy or torch."""

from __future__ import annotations

import numpy as np
import torch

from fusedoptim import _backend
from fusedoptim._opaque import opaque_to_dynamo
from fusedoptim.metrics._inputs import check_flag
from fusedoptim.preprocessing._base import StreamingScaler
from fusedoptim.preprocessing._statistics import M2, WEIGHT
from fusedoptim.preprocessing._transform import Plan

_EPS = np.finfo(np.float64).eps


def collapse(n_samples_seen):
    """scikit-learn's n_samples_seen_: one number when every feature saw as many samples
    (no NaN), else one per feature."""
    return n_samples_seen[0] if n_samples_seen.max() == n_samples_seen.min() else n_samples_seen


class StandardScaler(StreamingScaler):
    """Standardize features: ``z = (x - mean_) / scale_``, with scikit-learn's arguments,
    attributes and results, fitted on data streamed in batches (``partial_fit``).

    ``fit``/``partial_fit`` read each batch once: per-feature count, mean and sum of
    squared deviations in float64, NaN ignored, merged across batches with Chan's formula.
    ``transform`` writes each element once (into a new array, into X with ``copy=False``,
    or into ``out``), NaN kept. Inputs: numpy arrays, lists, torch tensors on CPU or CUDA;
    torch in, torch out. Fitted on torch tensors, the attributes are float64 torch tensors
    on that device (as scikit-learn's array-API mode returns them); otherwise numpy.

    Attributes: ``mean_``, ``var_``, ``scale_``, ``n_samples_seen_``, ``n_features_in_``.
    """

    def __init__(self, *, copy=True, with_mean=True, with_std=True):
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std
        super().__init__()

    @property
    def _needs_moments(self):
        return bool(self.with_mean or self.with_std)

    def _config(self):
        return (bool(self.with_mean), bool(self.with_std))

    def _check_params(self):
        check_flag(self.copy, "copy")
        check_flag(self.with_mean, "with_mean")
        check_flag(self.with_std, "with_std")

    def _kernel_weights(self, weights):
        # scikit-learn counts samples, not weights, when it computes no moments.
        return weights if self._needs_moments else None

    @opaque_to_dynamo
    def fit(self, X, y=None, sample_weight=None):
        """Computes the mean and standard deviation of X (forgetting earlier data)."""
        return self._absorb(X, sample_weight, reset=True)

    @opaque_to_dynamo
    def partial_fit(self, X, y=None, sample_weight=None):
        """Adds the batch X to the statistics. A refused batch (wrong feature count, inf,
        non-numeric, bad weights) raises ValueError/TypeError and changes nothing."""
        return self._absorb(X, sample_weight, reset=False)

    @opaque_to_dynamo
    def transform(self, X, copy=None, *, out=None):
        """``(X - mean_) / scale_``, in X's float dtype (float32 stays float32), NaN kept.
        ``copy=False`` writes into X (numpy float arrays, torch tensors); ``out`` names the
        array to write (X's kind, shape and float dtype; may be X)."""
        return self._apply(X, inverse=False, copy=self._copy(copy), out=out)

    @opaque_to_dynamo
    def inverse_transform(self, X, copy=None, *, out=None):
        """``X * scale_ + mean_`` (see transform for copy and out)."""
        return self._apply(X, inverse=True, copy=self._copy(copy), out=out)

    @opaque_to_dynamo
    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def _copy(self, copy):
        copy = self.copy if copy is None else copy
        check_flag(copy, "copy")
        return copy

    @property
    def mean_(self):
        return self._attribute("mean_")

    @property
    def var_(self):
        return self._attribute("var_")

    @property
    def scale_(self):
        return self._attribute("scale_")

    @property
    def n_samples_seen_(self):
        return self._attribute("n_samples_seen_")

    def _attributes(self, running):
        weight = running.stats[:, WEIGHT]
        if not self._needs_moments:
            # scikit-learn's dtype: int64, or X's dtype when sample weights were passed.
            dtype = running.dtype if running.weighted else torch.int64
            counts = torch.from_numpy(weight).to(dtype)
            return {
                "mean_": None,
                "var_": None,
                "scale_": None,
                "n_samples_seen_": collapse(counts),
            }
        seen = collapse(weight)
        mean = running.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            var = running.stats[:, M2] / weight
            scale = None
            if self.with_std:
                # scikit-learn's _is_constant_feature: a variance within the rounding error
                # of a constant feature's gets scale 1, as an exact zero does.
                constant = var <= seen * _EPS * var + (seen * mean * _EPS) ** 2
                scale = np.sqrt(var)
                scale[constant] = 1.0
        return {
            "mean_": mean,
            "var_": var if self.with_std else None,
            "scale_": scale,
            "n_samples_seen_": seen,
        }

    def _plan(self, dtype, inverse):
        attributes = self._host_attributes()
        features = self.n_features_in_
        mean = attributes["mean_"] if self.with_mean else None
        scale = attributes["scale_"] if self.with_std else np.ones(features)
        # scikit-learn casts mean_ and scale_ to X's dtype and computes in it.
        if not inverse:
            shift = mean if mean is not None else np.zeros(features)
            return Plan(_backend.SCALER_SUBTRACT_DIVIDE, shift, scale, dtype)
        # -0.0 is the exact identity of the addition (see ops/scaler.h).
        shift = mean if mean is not None else np.full(features, -0.0)
        return Plan(_backend.SCALER_MULTIPLY_ADD, scale, shift, dtype)

    def _repr_args(self):
        defaults = {"copy": True, "with_mean": True, "with_std": True}
        return [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
