"""A scaler's running statistics. Per feature: the total weight (the count of non-NaN
values when unweighted), the mean relative to a per-feature shift, M2 (the weighted sum of
squared deviations from the mean), min and max, as one C-contiguous (n_features, 5)
float64 numpy array in host memory: the layout the C++ kernels write (cpu::FeatureStats).
Every batch a scaler sees is measured relative to the same shift, one value per feature
from its first batch (see [note: shifted coordinates] in csrc/cpu/scaler_kernels.cpp), and
every merge, whatever device a batch came from, runs through the extension's Chan merge
(csrc/ops/scaler.h), so the formula exists once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fusedoptim import _backend
from fusedoptim.preprocessing import _torch_ops
from fusedoptim.preprocessing._inputs import KERNEL_DTYPES, first_inf_message

WEIGHT, MEAN, M2, MIN, MAX = range(5)
COLUMNS = 5


@dataclass(frozen=True)
class Running:
    """What a fitted scaler knows. Replaced, never changed in place: a refused batch
    leaves the old one as it was."""

    stats: np.ndarray  # (n_features, 5) float64, the means relative to shift
    shift: np.ndarray  # (n_features,) float64
    moments: bool  # stats hold mean and M2 (else only weights, min and max)
    n_rows: int  # rows seen, NaN or not
    dtype: torch.dtype  # the data's float dtype, promoted over batches
    weighted: bool  # the last batch had sample weights

    @property
    def n_features(self) -> int:
        return self.stats.shape[0]

    def mean(self) -> np.ndarray:
        """The absolute means (NaN for a feature without weight)."""
        weight = self.stats[:, WEIGHT]
        return np.where(weight != 0, self.shift + self.stats[:, MEAN], np.nan)

    def shift_for(self, x: torch.Tensor) -> np.ndarray:
        """The shift to measure the batch x against: ours, except for features that have
        no weight yet (NaN throughout so far), which take a value of x as a first batch
        would: their statistics are empty, so their shift is free to change."""
        empty = self.stats[:, WEIGHT] == 0
        if not empty.any():
            return self.shift
        fresh = _torch_ops.first_finite(x).cpu().numpy()
        return np.where(empty, fresh, self.shift)

    def absorb(self, batch: np.ndarray, shift: np.ndarray, rows: int, dtype, weighted: bool):
        """These statistics merged with a batch's, measured relative to ``shift``
        (shift_for's)."""
        stats = self.stats.copy()
        merge(stats, batch)
        return replace(
            self,
            stats=stats,
            shift=shift,
            n_rows=self.n_rows + rows,
            dtype=torch.promote_types(self.dtype, dtype),
            weighted=weighted,
        )


def empty(features: int) -> np.ndarray:
    """The statistics of no data: merging them changes nothing."""
    stats = np.zeros((features, COLUMNS))
    stats[:, MIN] = np.inf
    stats[:, MAX] = -np.inf
    return stats


def of_batch(x: torch.Tensor, weights, moments: bool, shift: np.ndarray | None, name="X"):
    """(stats, shift): the statistics of one batch (rows of x; weights: None or float64,
    one per row) relative to ``shift``, or to a shift chosen from the batch when None.
    ``moments=False`` computes only weights, min and max. Raises ValueError naming the
    first +-inf value; nothing else is touched, so a refused batch changes no scaler."""
    features = x.shape[1]
    chosen = np.zeros(features) if shift is None else np.ascontiguousarray(shift)
    if x.device.type == "cpu":
        if x.dtype not in KERNEL_DTYPES:
            x = x.to(torch.float32)  # exact for float16 and bfloat16
        stats = np.empty((features, COLUMNS))
        bad = _backend.scaler_fit(
            x.contiguous(), weights, stats, chosen, moments, choose_shift=shift is None
        )
    else:
        stats, chosen, bad = _torch_ops.statistics(x, weights, moments, shift)
    if bad >= 0:
        raise ValueError(first_inf_message(bad, features, name))
    return stats, chosen


def merge(into: np.ndarray, other: np.ndarray) -> None:
    """into <- into merged with other (Chan's formula for the moments; min; max); both
    relative to the same shift."""
    _backend.scaler_merge(into, np.ascontiguousarray(other, dtype=np.float64))


def merged(parts) -> np.ndarray:
    """All parts merged in order (the same bits on every process that merges them)."""
    total = np.array(parts[0], dtype=np.float64, order="C")
    for part in parts[1:]:
        merge(total, part)
    return total


def rebased(stats: np.ndarray, shift: np.ndarray, to_shift: np.ndarray) -> np.ndarray:
    """The same statistics with their means relative to ``to_shift``."""
    out = stats.copy()
    has_weight = out[:, WEIGHT] != 0
    out[:, MEAN] = np.where(has_weight, (shift - to_shift) + out[:, MEAN], 0.0)
    return out
