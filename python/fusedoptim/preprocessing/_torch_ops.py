"""The device path of the scalers: the same statistics and transforms as the C++ kernels,
written with torch operations, for CUDA tensors (and, on the CPU, for what the kernels do
not take: strided views transformed in place, float16 and bfloat16 transforms).

The statistics are the corrected two-pass moments of the whole batch in float64, relative
to the scaler's shift (see [note: shifted blocks] and [note: shifted coordinates] in
csrc/cpu/scaler_kernels.cpp), copied to the host in one transfer. The transforms are
scikit-learn's two in-place operations, each rounded to the data's dtype (see [note:
scikit-learn's roundings] in csrc/ops/scaler.h).
"""

from __future__ import annotations

import numpy as np
import torch

from fusedoptim import _backend


def first_finite(x: torch.Tensor, rows: int = 64) -> torch.Tensor:
    """Each feature's first finite value among the first ``rows`` rows, else 0 (float64):
    the shift the C++ driver chooses (see csrc/cpu/scaler_cpu.cpp)."""
    head = x[:rows].to(torch.float64)
    finite = torch.isfinite(head)
    first = finite.to(torch.int8).argmax(0)
    values = head.gather(0, first[None, :])[0]
    return torch.where(finite.any(0), values, 0.0)


def statistics(x: torch.Tensor, weights: torch.Tensor | None, moments: bool, shift):
    """(stats, shift, first_inf): the (features, 5) float64 numpy statistics of x's rows
    (see _statistics.py) with means relative to ``shift`` (float64 numpy, or None to take
    first_finite), the shift, and the flat index of the first +-inf value of x, or -1.
    Waits for the device once, to copy the results to the host."""
    if shift is None:
        shift_t = first_finite(x)
    else:
        shift_t = torch.from_numpy(np.ascontiguousarray(shift)).to(x.device, non_blocking=True)
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
        shifted = torch.where(present, values - shift_t, 0.0)
        first = torch.where(has_weight, (w * shifted).sum(0) / weight, 0.0)
        d = torch.where(present, shifted - first, 0.0)
        wd = w * d
        dev = wd.sum(0)
        correction = torch.where(has_weight, dev / weight, 0.0)
        mean = torch.where(has_weight, first + correction, 0.0)
        m2 = torch.where(has_weight, (wd * d).sum(0) - dev * correction, 0.0)
    any_inf = torch.isinf(values).any().to(torch.float64)
    columns = torch.stack([weight, mean, m2, low, high, shift_t], dim=1)
    host = torch.cat([columns.reshape(-1), any_inf[None]]).cpu().numpy()
    table = host[:-1].reshape(-1, 6)
    stats, chosen = np.ascontiguousarray(table[:, :5]), np.ascontiguousarray(table[:, 5])
    if host[-1]:
        hits = torch.isinf(x).reshape(-1).nonzero()
        return stats, chosen, int(hits[0, 0])
    return stats, chosen, -1


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
