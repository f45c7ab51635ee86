"""``sync()``: every process's statistics gathered and merged in rank order, with the same
Chan merge that merges batches, so that every rank ends with the same bits."""

from __future__ import annotations

import numpy as np
import torch

from fusedoptim.preprocessing import _statistics
from fusedoptim.preprocessing._statistics import Running

# Ranks may have seen different float dtypes: the merged statistics take their promotion.
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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


def _header(running: Running | None, device) -> torch.Tensor:
    if running is None:
        values = [-1, 0, -1, 0, 0]
    else:
        values = [
            running.n_features,
            running.n_rows,
            _DTYPES.index(running.dtype),
            int(running.weighted),
            int(running.moments),
        ]
    return torch.tensor(values, dtype=torch.int64, device=device)


def gather(running: Running | None, owner: str, group) -> Running | None:
    """The statistics of all processes of ``group``, or None when none has seen data (a
    process that has not counts as empty). Raises ValueError on every process when two
    were fitted on different feature counts, or one with means and variances and another
    without. Each rank's means are re-expressed relative to the first fitted rank's shift
    before the merge."""
    device = _device(group)
    headers = [h.tolist() for h in _all_gather(_header(running, device), group)]
    fitted = [h for h in headers if h[0] >= 0]
    if not fitted:
        return None
    if len({h[0] for h in fitted}) > 1:
        counts = ", ".join(f"rank {r}: {h[0]}" for r, h in enumerate(headers) if h[0] >= 0)
        raise ValueError(f"{owner}.sync(): the processes saw different feature counts ({counts})")
    if len({h[4] for h in fitted}) > 1:
        raise ValueError(
            f"{owner}.sync(): some processes computed means and variances, others did not "
            "(different with_mean/with_std)"
        )
    features = fitted[0][0]
    if running is None:
        packed = np.concatenate([_statistics.empty(features), np.zeros((features, 1))], axis=1)
    else:
        packed = np.concatenate([running.stats, running.shift[:, None]], axis=1)
    parts = [p.numpy() for p in _all_gather(torch.from_numpy(packed).to(device), group)]
    first = next(r for r, h in enumerate(headers) if h[0] >= 0)
    shift = parts[first][:, 5].copy()
    stats = [_statistics.rebased(p[:, :5], p[:, 5], shift) for p in parts]
    dtype = _DTYPES[fitted[0][2]]
    for h in fitted[1:]:
        dtype = torch.promote_types(dtype, _DTYPES[h[2]])
    return Running(
        stats=_statistics.merged(stats),
        shift=shift,
        moments=bool(fitted[0][4]),
        n_rows=sum(h[1] for h in headers),
        dtype=dtype,
        weighted=any(h[3] for h in fitted),
    )
