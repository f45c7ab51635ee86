"""Tensors of one fused call that share memory.

One fused call writes all its tensors at once, from several threads, so no
two of them may overlap. torch.optim updates a group's params one after the
other: a param listed twice, or two params that are overlapping views of one
buffer, get their updates in list order, each reading the other's result. The
optimizers reproduce that with successive calls (``overlap_levels``: each
param waits for the earlier params it overlaps, and calls run level by
level). A fused call itself refuses written tensors that share memory
(csrc/bindings/written_spans.h), which is what the functional API, whose
state lists come from the caller, relies on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fusedoptim import _backend


def overlap_levels(tensors: Sequence[Any], owners: Sequence[Any] | None = None) -> list[int]:
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
    spans = []  # (start, end, position) of every non-empty tensor
    repeats: dict[int, int] = {}
    for position, t in enumerate(tensors):
        # Every tensor is dense (checked before): it spans [address, address + nbytes).
        size = t.nbytes
        if size:
            start = _backend.address(t)
            spans.append((start, start + size, position))
        else:
            owner = id(owners[position] if owners is not None else t)
            levels[position] = repeats.get(owner, 0)
            repeats[owner] = levels[position] + 1
    spans.sort()
    cluster: list[tuple[int, int, int]] = []
    cluster_end = 0
    for span in spans:
        if cluster and span[0] >= cluster_end:
            _assign_levels(cluster, levels)
            cluster = []
        cluster_end = max(cluster_end, span[1]) if cluster else span[1]
        cluster.append(span)
    _assign_levels(cluster, levels)
    return levels


def _assign_levels(cluster: list[tuple[int, int, int]], levels: list[int]) -> None:
    """Levels within one run of chained overlapping spans, in list order."""
    if len(cluster) < 2:
        return
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
