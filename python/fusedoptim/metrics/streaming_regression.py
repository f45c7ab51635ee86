"""Stateful regression metrics. All three keep the same float64 running statistics
(see ``regression.py``), so they can share one state with ``share_state_with``;
``update`` runs only device ops (no host sync on CUDA), so unlike the functions it does
not look for NaN/inf inputs or all-zero weights: they make ``compute()`` NaN/inf.

``update(y_true, y_pred)`` takes the true values first (scikit-learn's order);
torchmetrics' ``update(preds, target)`` is spelled ``update(preds=..., target=...)``.
MSE and MAE are symmetric in the two, R^2 is not (its denominator is y_true's
variance). Both sides are real arrays of one shape, so a wrong order cannot be told
from the values; R2Score refuses the one telltale case, a y_true that requires grad
(a model output) with a y_pred that does not.
"""

from __future__ import annotations

import torch

from fusedoptim.metrics import regression
from fusedoptim.metrics._inputs import check_flag
from fusedoptim.metrics.metric import ORDER, Metric, State, opaque_to_dynamo, update_arguments


def _grad(x):
    return isinstance(x, torch.Tensor) and x.requires_grad


class _MomentState(State):
    def all_reduce(self, group):
        """Sums are summed; the means and centred sums are merged pairwise (Chan)."""
        import torch.distributed as dist

        world = dist.get_world_size(group)
        gathered = {}
        for name, t in self.tensors.items():
            parts = [t.clone() for _ in range(world)]
            dist.all_gather(parts, t.contiguous(), group=group)
            gathered[name] = parts
        total = {name: gathered[name][0] for name in self.tensors}
        for rank in range(1, world):
            total = regression.merge_moments(total, {n: gathered[n][rank] for n in self.tensors})
        for name, t in self.tensors.items():
            t.copy_(total[name])


class _RegressionMetric(Metric):
    _allowed = ("raw_values", "uniform_average")

    def __init__(self, num_outputs=1, *, multioutput="uniform_average", share_state_with=None):
        if not isinstance(num_outputs, int) or isinstance(num_outputs, bool) or num_outputs < 1:
            raise ValueError(f"num_outputs must be a positive integer, got {num_outputs!r}")
        self.num_outputs = num_outputs
        self.multioutput = regression.check_multioutput(multioutput, num_outputs, self._allowed)
        super().__init__(share_state_with=share_state_with)

    def _make_state(self):
        return _MomentState(
            regression.zero_moments(self.num_outputs),
            f"regression moments, num_outputs={self.num_outputs}",
        )

    _order_matters = False  # whether swapping y_true and y_pred changes the result

    @opaque_to_dynamo
    def update(self, y_true=None, y_pred=None, sample_weight=None, *, preds=None, target=None):
        """Adds a batch. ``update(y_true, y_pred, sample_weight=None)``, scikit-learn's
        order: shapes (N,) or (N, num_outputs), optional weights (N,). Or torchmetrics'
        names, by keyword: ``update(preds=..., target=...)``."""
        y_true, y_pred, names = update_arguments(self, y_true, y_pred, preds, target)
        if self._order_matters and names[0] == "y_true" and _grad(y_true) and not _grad(y_pred):
            raise ValueError(
                f"{type(self).__name__}.update(): y_true requires grad and y_pred does not, "
                f"as if a model output came first; {ORDER}. If this y_true is the truth, "
                "pass y_true.detach()"
            )
        t, p, w, _ = regression.regression_inputs(
            y_true, y_pred, sample_weight, self.num_outputs, names
        )
        state = self._state
        state.follow(t.device)
        merged = regression.merge_moments(state.tensors, regression.batch_moments(t, p, w))
        for name, value in merged.items():
            state.tensors[name].copy_(value)
        state.updates += 1

    def _moments(self):
        if float(self._state.tensors["count"]) == 0:
            raise ValueError(f"{type(self).__name__}.compute(): no samples since the last reset")
        return self._state.tensors


class MeanSquaredError(_RegressionMetric):
    """``sklearn.metrics.mean_squared_error`` over all batches; a float64 tensor."""

    @opaque_to_dynamo
    def compute(self):
        return regression.mse_from(self._moments(), self.multioutput)


class MeanAbsoluteError(_RegressionMetric):
    """``sklearn.metrics.mean_absolute_error`` over all batches; a float64 tensor."""

    @opaque_to_dynamo
    def compute(self):
        return regression.mae_from(self._moments(), self.multioutput)


class R2Score(_RegressionMetric):
    """``sklearn.metrics.r2_score`` over all batches; a float64 tensor."""

    _allowed = ("raw_values", "uniform_average", "variance_weighted")
    _order_matters = True

    def __init__(
        self,
        num_outputs=1,
        *,
        multioutput="uniform_average",
        force_finite=True,
        share_state_with=None,
    ):
        check_flag(force_finite, "force_finite")
        self.force_finite = force_finite
        super().__init__(num_outputs, multioutput=multioutput, share_state_with=share_state_with)

    @opaque_to_dynamo
    def compute(self):
        return regression.r2_from(self._moments(), self.multioutput, self.force_finite)
