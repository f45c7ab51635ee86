"""Tensors of one fused call that share memory.

One fused call writes all its tensors at once, from several threads, so no
two of them may overlap. torch.optim updates a group's params one after the
other: a param listed twice, or two params that are overlapping views of one
buffer, get their updates in list order, each reading the other's result. The
optimizers reproduce that with successive calls (``overlap_levels``: each
param waits for the earlier params it overlaps, and calls run level by
level). A fused call itself refuses written tensors that share memory
(csrc/bindings/written_spans.h), which is what the functional API, whose
state lists come from the caller, relies on.

A tensor's memory here is the span from the lowest to the highest address it
touches, so two views with gaps that interleave (``x[:, ::2]`` and
``x[:, 1::2]``) count as overlapping: they run in successive calls, which
changes no result, only the number of calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fusedoptim import _backend


def overlap_levels(
    tensors: Sequence[torch.Tensor], owners: Sequence[Any] | None = None
) -> list[int]:
    """levels[i] = 1 + the largest level among earlier tensors whose memory
    overlaps tensor i's, or 0 where none does.

    Tensors at one level never overlap, and every tensor comes after (at a
    higher level than) each earlier tensor it overlaps: running the levels in
    order reproduces the list order wherever it matters. Costs one sort; the
    quadratic check runs only inside a run of overlapping spans, which the
    parameters of an ``nn.Module`` never form. An empty tensor has no memory
    to share, but one listed twice still shares its state (a step counter):
    its repeats, by the identity of ``owners[i]`` (default: the tensor), take
    successive levels.
    """
    levels = [0] * len(tensors)
    repeats: dict[int, int] = {}
    for position, t in enumerate(tensors):
        if t.numel() == 0:
            owner = id(owners[position] if owners is not None else t)
            levels[position] = repeats.get(owner, 0)
            repeats[owner] = levels[position] + 1
    for cluster in _clusters(tensors):
        _assign_levels(cluster, levels)
    return levels


def shares_memory(tensors: Sequence[torch.Tensor]) -> list[bool]:
    """shared[i]: the memory span of tensor i overlaps another tensor's."""
    shared = [False] * len(tensors)
    for cluster in _clusters(tensors):
        for _, _, position in cluster:
            shared[position] = True
    return shared


def _clusters(tensors: Sequence[torch.Tensor]) -> list[list[tuple[int, int, int]]]:
    """Runs of chained overlapping spans (start, end, position), two or more
    spans each, over the non-empty tensors."""
    spans = []
    for position, t in enumerate(tensors):
        if t.numel():
            start = _backend.address(t) + _lowest_offset(t) * t.element_size()
            spans.append((start, start + _extent(t) * t.element_size(), position))
    spans.sort()
    clusters = []
    cluster: list[tuple[int, int, int]] = []
    cluster_end = 0
    for span in spans:
        if cluster and span[0] >= cluster_end:
            clusters.append(cluster)
            cluster = []
        cluster_end = max(cluster_end, span[1]) if cluster else span[1]
        cluster.append(span)
    clusters.append(cluster)
    return [c for c in clusters if len(c) > 1]


def _lowest_offset(t: torch.Tensor) -> int:
    """Elements from t's first element to the lowest address it touches."""
    return sum((n - 1) * stride for n, stride in zip(t.shape, t.stride()) if stride < 0)


def _extent(t: torch.Tensor) -> int:
    """Elements from the lowest to the highest address t touches, inclusive:
    its numel when dense, more for a view with gaps (``x[:, ::2]``), whose
    span interleaves with the memory it skips."""
    return 1 + sum((n - 1) * abs(stride) for n, stride in zip(t.shape, t.stride()))


def _assign_levels(cluster: list[tuple[int, int, int]], levels: list[int]) -> None:
    """Levels within one run of chained overlapping spans, in list order."""
    ordered = sorted(cluster, key=lambda span: span[2])
    for k, (start, end, index) in enumerate(ordered):
        levels[index] = 1 + max(
            (
                levels[other]
                for other_start, other_end, other in ordered[:k]
                if other_start < end and start < other_end
            ),
            default=-1,
        )
