"""A scaler's running statistics: per feature the total weight (the count of non-NaN
values when unweighted), the mean, M2 (the weighted sum of squared deviations from the
mean), min and max, as one C-contiguous (n_features, 5) float64 numpy array in host
memory. That is the layout the C++ kernels write (cpu::FeatureStats), and every merge,
whatever device a batch came from, runs through the extension's Chan merge
(csrc/ops/scaler.h), so the formula exists once.
"""

from __future__ import annotations

import numpy as np
import torch

from fusedoptim import _backend
from fusedoptim.preprocessing import _torch_ops
from fusedoptim.preprocessing._inputs import first_inf_message

WEIGHT, MEAN, M2, MIN, MAX = range(5)
COLUMNS = 5


def empty(features: int) -> np.ndarray:
    """The statistics of no data: merging them changes nothing."""
    stats = np.zeros((features, COLUMNS))
    stats[:, MIN] = np.inf
    stats[:, MAX] = -np.inf
    return stats


def of_batch(x: torch.Tensor, weights: torch.Tensor | None, moments: bool, name="X"):
    """The statistics of one batch (rows of x; weights: None or float64, one per row).
    ``moments=False`` computes only weights, min and max. Raises ValueError naming the first
    +-inf value; nothing else is touched, so a refused batch changes no scaler."""
    features = x.shape[1]
    if x.device.type == "cpu":
        stats = np.empty((features, COLUMNS))
        bad = _backend.scaler_fit(x.contiguous(), weights, stats, moments)
    else:
        stats, bad = _torch_ops.statistics(x, weights, moments)
    if bad >= 0:
        raise ValueError(first_inf_message(bad, features, name))
    return stats


def merge(into: np.ndarray, other: np.ndarray) -> None:
    """into <- into merged with other (Chan's formula for the moments; min; max)."""
    _backend.scaler_merge(into, np.ascontiguousarray(other, dtype=np.float64))


def merged(parts) -> np.ndarray:
    """All parts merged in order (the same bits on every process that merges them)."""
    total = np.array(parts[0], dtype=np.float64, order="C")
    for part in parts[1:]:
        merge(total, part)
    return total
