"""``sync()``: every process's statistics gathered and merged, in rank order, with the
same Chan merge that merges batches, so every rank ends with the same bits."""

from __future__ import annotations

import numpy as np
import torch

from fusedoptim.preprocessing import _statistics

_DTYPE_CODES = {None: -1, torch.float32: 0, torch.float64: 1}


def _device(group):
    import torch.distributed as dist

    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_gather(t: torch.Tensor, group) -> list[torch.Tensor]:
    import torch.distributed as dist

    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, t, group=group)
    return [p.cpu() for p in parts]


def gather(stats, moments: bool, n_rows: int, dtype, weighted: bool, owner: str, group):
    """(stats, moments, n_rows, dtype, weighted) over all processes of ``group``, or None
    when no process has seen data. Processes that have not are counted as empty. Raises
    ValueError on every process when two were fitted on different feature counts, or one
    with means and variances and another without."""
    device = _device(group)
    features = -1 if stats is None else stats.shape[0]
    header = torch.tensor(
        [features, n_rows, _DTYPE_CODES[dtype], int(weighted), int(moments)],
        dtype=torch.int64,
        device=device,
    )
    headers = [h.tolist() for h in _all_gather(header, group)]
    counts = sorted({h[0] for h in headers if h[0] >= 0})
    if not counts:
        return None
    if len(counts) > 1:
        per_rank = ", ".join(f"rank {r}: {h[0]}" for r, h in enumerate(headers) if h[0] >= 0)
        raise ValueError(f"{owner}.sync(): the processes saw different feature counts ({per_rank})")
    if len({h[4] for h in headers if h[0] >= 0}) > 1:
        raise ValueError(
            f"{owner}.sync(): some processes computed means and variances, others did not "
            "(different with_mean/with_std)"
        )
    mine = stats if stats is not None else _statistics.empty(counts[0])
    parts = _all_gather(torch.from_numpy(np.ascontiguousarray(mine)).to(device), group)
    total = _statistics.merged([p.numpy() for p in parts])
    codes = [h[2] for h in headers if h[2] >= 0]
    merged_dtype = torch.float64 if 1 in codes else torch.float32
    moments = any(h[4] for h in headers if h[0] >= 0)
    return total, moments, sum(h[1] for h in headers), merged_dtype, any(h[3] for h in headers)
