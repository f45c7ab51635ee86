"""The device path of the scalers: the same statistics and transforms as the C++ kernels,
written with torch operations, for CUDA tensors (and for CPU tensors that the kernels
cannot take in place, such as a transposed view transformed with ``copy=False``).

The statistics are the corrected two-pass moments of the whole batch in float64 (see
[note: two passes in cache] in csrc/cpu/scaler_kernels.cpp), copied to the host in one
transfer; the transforms are scikit-learn's two in-place operations, each rounded to the
data's dtype (see [note: scikit-learn's roundings] in csrc/ops/scaler.h).
"""

from __future__ import annotations

import numpy as np
import torch

from fusedoptim import _backend


def statistics(x: torch.Tensor, weights: torch.Tensor | None, moments: bool):
    """(stats, first_inf): the (features, 5) float64 numpy statistics of x's rows (see
    _statistics.py) and the flat index of the first +-inf value of x, or -1. Waits for the
    device once, to copy the statistics to the host."""
    values = x.to(torch.float64)
    present = ~torch.isnan(values)
    w = present.to(torch.float64) if weights is None else present * weights[:, None]
    weight = w.sum(0)
    low = torch.where(present, values, torch.inf).amin(0)
    high = torch.where(present, values, -torch.inf).amax(0)
    mean = torch.zeros_like(weight)
    m2 = torch.zeros_like(weight)
    if moments:
        has_weight = weight != 0
        filled = torch.where(present, values, 0.0)
        first = torch.where(has_weight, (w * filled).sum(0) / weight, 0.0)
        d = torch.where(present, values - first, 0.0)
        wd = w * d
        dev = wd.sum(0)
        correction = torch.where(has_weight, dev / weight, 0.0)
        mean = torch.where(has_weight, first + correction, 0.0)
        m2 = torch.where(has_weight, (wd * d).sum(0) - dev * correction, 0.0)
    any_inf = torch.isinf(values).any().to(torch.float64)
    packed = torch.cat(
        [torch.stack([weight, mean, m2, low, high], dim=1).reshape(-1), any_inf[None]]
    )
    host = packed.cpu().numpy()
    stats = np.ascontiguousarray(host[:-1].reshape(-1, 5))
    if host[-1]:
        hits = torch.isinf(x).reshape(-1).nonzero()
        return stats, int(hits[0, 0])
    return stats, -1


def transform(src, dst, op, a, b, *, clip=None, check_inf=True) -> int:
    """dst <- op(src) with torch operations (src and dst of any strides; dst may be src).
    ``a``/``b``: one value per feature on src's device, in the math dtype (float32 computes
    in float, float64 in double and rounds to dst's dtype after each operation). With
    ``check_inf``, returns the flat index of the first +-inf of src before writing anything,
    else -1; without it (CUDA: no wait for the device) infinities pass through."""
    if check_inf:
        hits = torch.isinf(src).reshape(-1).nonzero()
        if hits.numel():
            return int(hits[0, 0])
    if op == _backend.SCALER_SUBTRACT_DIVIDE:
        torch.sub(src, a, out=dst)
        torch.div(dst, b, out=dst)
    else:
        torch.mul(src, a, out=dst)
        torch.add(dst, b, out=dst)
    if clip is not None:
        torch.clamp(dst, clip[0], clip[1], out=dst)
    return -1
