"""Interleaved timing: every implementation runs once per round, in a rotating
order, so drift (other processes, frequency, memory traffic) hits all of them
alike; a ratio of medians from one run is then a fair comparison."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    times: tuple[float, ...]  # seconds, one per round
    # The very first call (a warm-up call, or the first round without one):
    # state allocation, first touch of its pages, a library's compile.
    first: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


def interleaved(
    fns: dict[str, Callable[[], None]],
    *,
    warmup: int,
    rounds: int,
    min_rounds: int,
    max_seconds: float,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Timing]:
    """Times each callable ``rounds`` times (fewer, but at least ``min_rounds``, once
    ``max_seconds`` have passed); ``warmup`` calls each come first, out of the
    statistics (only the first call's time is kept, as ``Timing.first``)."""
    names = list(fns)
    first: dict[str, float] = {}
    for name in names:
        for _ in range(warmup):
            t0 = time.perf_counter()
            fns[name]()
            first.setdefault(name, time.perf_counter() - t0)
    times: dict[str, list[float]] = {name: [] for name in names}
    # A collection in the middle of one call would be charged to that call alone.
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t0)
            if on_round is not None:
                on_round(r + 1)
            if r + 1 >= min_rounds and time.perf_counter() - start > max_seconds:
                break
    finally:
        if was_enabled:
            gc.enable()
    return {name: Timing(tuple(t), first.get(name, t[0])) for name, t in times.items()}
