"""Classification and regression metrics: scikit-learn's functions, plus stateful
metrics for streaming evaluation (update / compute / reset / state_dict / sync)."""

from fusedoptim.metrics._scores import UndefinedMetricWarning
from fusedoptim.metrics.classification import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)
from fusedoptim.metrics.metric import Metric
from fusedoptim.metrics.regression import mean_absolute_error, mean_squared_error, r2_score
from fusedoptim.metrics.streaming_classification import (
    Accuracy,
    ConfusionMatrix,
    F1Score,
    FBetaScore,
    Precision,
    Recall,
)
from fusedoptim.metrics.streaming_regression import MeanAbsoluteError, MeanSquaredError, R2Score

__all__ = [
    "Accuracy",
    "ConfusionMatrix",
    "F1Score",
    "FBetaScore",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "Precision",
    "R2Score",
    "Recall",
    "UndefinedMetricWarning",
    "accuracy_score",
    "confusion_matrix",
    "f1_score",
    "fbeta_score",
    "mean_absolute_error",
    "mean_squared_error",
    "precision_recall_fscore_support",
    "precision_score",
    "r2_score",
    "recall_score",
]
