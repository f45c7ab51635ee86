"""How much memory an optimizer keeps and how much more a step takes: state
bytes per parameter, counted from the state tensors, and the peak resident
memory a warm step adds, measured by the kernel's high-water mark.

[note: peak step memory] Linux keeps each process's peak resident set size
(VmHWM in /proc/self/status) and resets it to the current RSS when "5" is
written to /proc/self/clear_refs (Linux >= 4.0). The extra memory of a step is
VmHWM after the step minus VmRSS just before it. Two things would hide a
temporary from that count, and both are ruled out before measuring:
- glibc's malloc keeps freed memory resident for reuse, so a temporary that
  reuses the pages of an earlier step's adds nothing to RSS. ``PeakRss``
  makes every allocation of 64 KiB or more its own mmap (mallopt
  M_MMAP_THRESHOLD, which also stops glibc from raising that threshold as
  large blocks are freed: a freed block goes back to the kernel at once), and
  calls malloc_trim(0) before each measurement.
- the kernel updates the high-water mark when pages are unmapped (and when
  it is read), so a temporary freed inside the step is counted at its peak.
Each run checks the method on itself: a step that allocates and fills one
temporary of a known size must read back as that size (``calibrate``), and an
empty step gives the noise floor. The resolution is the kernel's: it counts
RSS per CPU and folds each CPU's count into the total in batches of 32 pages
(percpu_counter_batch), so each reading can be off by up to 128 KiB per CPU
and a difference of two by twice that (on the development machine, 2 CPUs
and Linux 6.18, temporaries of 0.3-64 MB read up to 270 KiB under their
size). Below that resolution a second count bounds the peak from above:
RSS grows only by page faults, so the pages faulted in during the call
(getrusage's minor + major faults, times the page size) are at least its
peak extra memory, as long as a fault maps one page (transparent huge pages
"madvise" or "never", and nothing here madvises them; ``PeakRss.huge_pages``
says which). A temporary freed and allocated again counts twice there, so
the bound can be loose, never low: an 8 MiB temporary faults in 2049 pages
(its own and malloc's header page).
A thread that samples VmRSS every 0.2 ms was the alternative: it needs the
GIL between samples (torch ops release it, Python code in the step does
not) and misses a temporary that lives less than a sampling interval, so it
can only undercount.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fusedoptim.optim._state_precision import DEFAULT_MIN_8BIT_SIZE

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 64 * 1024


def _status() -> dict[str, int]:
    """VmRSS and VmHWM in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


@dataclass(frozen=True)
class Reading:
    peak_extra: int  # bytes: VmHWM during the call minus VmRSS before it
    faulted: int  # bytes: pages faulted in during the call, an upper bound on peak_extra
    seconds: float = math.nan  # the call's duration


def _faults() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt + usage.ru_majflt


def _huge_pages() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return "unknown"
    return text[text.index("[") + 1 : text.index("]")] if "[" in text else text.strip()


class PeakRss:
    """Peak extra resident memory of a call; see [note: peak step memory]."""

    def __init__(self) -> None:
        self.problem: str | None = None
        # With "always", one fault can map 2 MiB and Reading.faulted is no bound.
        self.huge_pages = _huge_pages()
        self._libc = None
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name)
            if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
                self.problem = "mallopt(M_MMAP_THRESHOLD) refused"
            self._libc = libc
        except (OSError, AttributeError, TypeError) as error:
            self.problem = f"not glibc ({type(error).__name__}: {error})"
        try:
            self._reset()
            _status()["VmHWM"]
        except (OSError, KeyError) as error:
            self.problem = f"no resettable VmHWM ({type(error).__name__}: {error})"

    def _reset(self) -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def measure(self, fn: Callable[[], object]) -> Reading:
        """How far the RSS during ``fn()`` rose above the RSS before it."""
        gc.collect()
        if self._libc is not None:
            self._libc.malloc_trim(0)
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._reset()
            before = _status()["VmRSS"]
            faults = _faults()
            t0 = time.perf_counter()
            fn()
            seconds = time.perf_counter() - t0
            faults = _faults() - faults
            peak = _status()["VmHWM"]
        finally:
            if was_enabled:
                gc.enable()
        return Reading(peak - before, faults * resource.getpagesize(), seconds)

    def extra(self, fn: Callable[[], object]) -> int:
        """Bytes by which the peak RSS during ``fn()`` exceeds the RSS before it."""
        return self.measure(fn).peak_extra


def calibrate(rss: PeakRss, nbytes: int, repeats: int = 3) -> list[Reading]:
    """Readings of a call that allocates and fills one temporary of ``nbytes`` and
    frees it: each should be ``nbytes`` give or take the counters' batching. A
    first, unread call pays one-time costs (torch's lazy initializations)."""

    def temporary() -> None:
        torch.empty(nbytes, dtype=torch.uint8).fill_(1)

    temporary()
    return [rss.measure(temporary) for _ in range(repeats)]


def _tensors(value: object):
    """The plain tensors that hold a state value's bytes: a tensor subclass
    (torchao's OptimState8bit) through its __tensor_flatten__ inner tensors."""
    if not isinstance(value, torch.Tensor):
        return
    if type(value) is not torch.Tensor and hasattr(value, "__tensor_flatten__"):
        names, _ = value.__tensor_flatten__()
        for name in names:
            yield from _tensors(getattr(value, name))
        return
    yield value


@dataclass
class StateBytes:
    total: int = 0
    params: int = 0
    large: int = 0  # state bytes of params with at least min_8bit_size elements
    large_params: int = 0
    by_key: dict[str, int] = field(default_factory=dict)

    @property
    def per_param(self) -> float:
        return self.total / self.params if self.params else math.nan

    @property
    def per_large_param(self) -> float:
        return self.large / self.large_params if self.large_params else math.nan


def state_bytes(
    optimizer: torch.optim.Optimizer, min_8bit_size: int = DEFAULT_MIN_8BIT_SIZE
) -> StateBytes:
    """``sum(t.numel() * t.element_size())`` over the tensors of ``optimizer.state``,
    each storage counted once (a lookup table shared by all params counts once),
    split by params above and under ``min_8bit_size``."""
    out = StateBytes()
    seen: set[tuple[int, int]] = set()
    for group in optimizer.param_groups:
        for p in group["params"]:
            n = p.numel()
            large = n >= min_8bit_size
            out.params += n
            out.large_params += n if large else 0
            for key, value in optimizer.state.get(p, {}).items():
                for t in _tensors(value):
                    nbytes = t.numel() * t.element_size()
                    where = (t.untyped_storage().data_ptr(), t.storage_offset())
                    if nbytes == 0 or where in seen:
                        continue
                    seen.add(where)
                    out.total += nbytes
                    out.large += nbytes if large else 0
                    out.by_key[str(key)] = out.by_key.get(str(key), 0) + nbytes
    return out
