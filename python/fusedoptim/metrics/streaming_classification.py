"""Stateful classification metrics: every one keeps the same state, an int64
C x C confusion matrix (row = true class), so several metrics built with
``share_state_with`` cost one counting pass per batch.

``update(y_true, y_pred)`` takes the true labels first (scikit-learn's order);
torchmetrics' ``update(preds, target)`` is spelled ``update(preds=..., target=...)``.
Two label arrays in the wrong order cannot be detected (the confusion matrix is
transposed: precision and recall swap). Scores, probabilities or any floats in y_true's
place while y_pred holds labels are refused, and the message names the order.

``compute()`` gives what the matching scikit-learn function returns on all the data
seen since ``reset()``, with ``labels=None`` meaning "the classes that occurred"
(sklearn's rule) for the scores, and every class 0..C-1 for ``ConfusionMatrix``.

[note: CUDA range checks] On CPU, ``update`` rejects a label outside [0, C) at once
and leaves the state unchanged. On CUDA that check would wait for the GPU, so
``update`` counts the valid pairs, adds the number of invalid ones (and of invalid
probabilities) to an on-device counter, and ``compute()`` raises if it is not zero.
"""

from __future__ import annotations

import torch

from fusedoptim import _backend
from fusedoptim.metrics import _scores
from fusedoptim.metrics._inputs import classification_inputs
from fusedoptim.metrics.metric import ORDER, Metric, State, opaque_to_dynamo, update_arguments


def _check_num_classes(num_classes):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


class ConfusionMatrix(Metric):
    """Running C x C counts; ``compute()`` equals
    ``sklearn.metrics.confusion_matrix(..., labels=range(C), normalize=normalize)``."""

    def __init__(self, num_classes, *, normalize=None, share_state_with=None):
        _check_num_classes(num_classes)
        if normalize not in (None, "true", "pred", "all"):
            raise ValueError(f'normalize must be None, "true", "pred" or "all", got {normalize!r}')
        self.num_classes = num_classes
        self.normalize = normalize
        super().__init__(share_state_with=share_state_with)

    def _make_state(self):
        c = self.num_classes
        tensors = {
            "counts": torch.zeros((c, c), dtype=torch.int64),
            "invalid": torch.zeros((), dtype=torch.int64),
        }
        return State(tensors, f"confusion counts, num_classes={c}")

    @opaque_to_dynamo
    def update(self, y_true=None, y_pred=None, *, preds=None, target=None):
        """Counts a batch. ``update(y_true, y_pred)``, scikit-learn's order: y_true the
        true labels (N,), y_pred labels (N,), scores (N, C) or probabilities of class 1
        (N,). Or torchmetrics' names, by keyword: ``update(preds=..., target=...)``."""
        y_true, y_pred, names = update_arguments(self, y_true, y_pred, preds, target)
        t, p, _, invalid, _ = classification_inputs(
            y_true,
            y_pred,
            None,
            self.num_classes,
            deferred=True,
            names=names,
            order_hint=ORDER if names[0] == "y_true" else None,
        )
        state = self._state
        state.follow(t.device)
        skipped = _backend.confusion_matrix_add_(state.tensors["counts"], t, p, names=names)
        for extra in (skipped, invalid):
            if extra is not None:
                state.tensors["invalid"] += extra
        state.updates += 1

    def _counts(self):
        """The checked counts (raises if a CUDA update saw invalid input)."""
        invalid = int(self._state.tensors["invalid"])
        if invalid:
            raise ValueError(
                f"{invalid} input(s) passed to update() since the last reset were invalid "
                f"(labels outside [0, num_classes={self.num_classes}) or probabilities "
                "outside [0, 1]); they were not counted"
            )
        return self._state.tensors["counts"]

    @opaque_to_dynamo
    def compute(self):
        counts = self._counts().clone()
        if self.normalize is None:
            return counts
        cm = counts.to(torch.float64)
        if self.normalize == "true":
            cm = cm / cm.sum(dim=1, keepdim=True)
        elif self.normalize == "pred":
            cm = cm / cm.sum(dim=0, keepdim=True)
        else:
            cm = cm / cm.sum()
        return torch.nan_to_num(cm, nan=0.0)


class Accuracy(ConfusionMatrix):
    """Fraction of correct predictions (``sklearn.metrics.accuracy_score``), a 0-d
    float64 tensor."""

    def __init__(self, num_classes, *, share_state_with=None):
        super().__init__(num_classes, share_state_with=share_state_with)

    @opaque_to_dynamo
    def compute(self):
        counts = self._counts()
        total = counts.sum()
        if int(total) == 0:
            raise ValueError("Accuracy.compute(): no samples since the last reset")
        return counts.diagonal().sum().to(torch.float64) / total


class FBetaScore(ConfusionMatrix):
    """F-beta (``sklearn.metrics.fbeta_score``) over all batches since ``reset()``.

    ``average``: "macro" (default), "micro", "weighted", "binary" (scores ``pos_label``;
    at most two classes may occur) or None (one score per class in ``labels``, or per
    class that occurred). ``zero_division`` defaults to 0 (sklearn's "warn" also works).
    ``compute()`` returns a float64 tensor (0-d, or per class when average=None).
    """

    _which = 2
    _warn_name = "f-score"

    def __init__(
        self,
        num_classes,
        *,
        beta=1.0,
        average="macro",
        labels=None,
        pos_label=1,
        zero_division=0,
        share_state_with=None,
    ):
        _scores.check_beta(beta)
        _scores.check_average(average)
        _scores.zero_division_value(zero_division)
        _check_num_classes(num_classes)
        if labels is not None:
            labels = [int(x) for x in labels]
            bad = [x for x in labels if not 0 <= x < num_classes]
            if bad:
                raise ValueError(f"labels {bad} are not classes in [0, {num_classes})")
        if average == "binary":
            pos_label = _scores.integer_pos_label(pos_label)
            if not 0 <= pos_label < num_classes:
                raise ValueError(
                    f"pos_label must be a class in [0, {num_classes}), got {pos_label}"
                )
        self.beta = beta
        self.average = average
        self.labels = labels
        self.pos_label = pos_label
        self.zero_division = zero_division
        super().__init__(num_classes, share_state_with=share_state_with)

    @opaque_to_dynamo
    def compute(self):
        counts = self._counts()
        if int(counts.sum()) == 0:
            raise ValueError(f"{type(self).__name__}.compute(): no samples since the last reset")
        true_sum = counts.sum(dim=1)
        pred_sum = counts.sum(dim=0)
        classes = torch.arange(self.num_classes, device=counts.device)
        labels = None
        if self.labels is not None:
            labels = torch.tensor(self.labels, dtype=torch.int64, device=counts.device)
        index = _scores.select_labels(
            classes, (true_sum > 0) | (pred_sum > 0), labels, self.pos_label, self.average
        )
        scores = _scores.precision_recall_fscore(
            counts.diagonal()[index],
            pred_sum[index],
            true_sum[index],
            beta=self.beta,
            average=self.average,
            warn_for=(self._warn_name,),
            zero_division=self.zero_division,
        )
        return scores[self._which]


class F1Score(FBetaScore):
    """F1 (``sklearn.metrics.f1_score``); see FBetaScore for the options."""

    def __init__(
        self,
        num_classes,
        *,
        average="macro",
        labels=None,
        pos_label=1,
        zero_division=0,
        share_state_with=None,
    ):
        super().__init__(
            num_classes,
            beta=1.0,
            average=average,
            labels=labels,
            pos_label=pos_label,
            zero_division=zero_division,
            share_state_with=share_state_with,
        )


class Precision(F1Score):
    """tp / (tp + fp) (``sklearn.metrics.precision_score``); see FBetaScore."""

    _which = 0
    _warn_name = "precision"


class Recall(F1Score):
    """tp / (tp + fn) (``sklearn.metrics.recall_score``); see FBetaScore."""

    _which = 1
    _warn_name = "recall"
