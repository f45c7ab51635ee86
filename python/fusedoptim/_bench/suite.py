"""Runs the cases: each (workload, optimizer, dtype) with every implementation and
the bandwidth probe timed in one interleaved loop."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field

from fusedoptim._bench import environment, implementations, timing, workloads
from fusedoptim._bench.implementations import FUSEDOPTIM, KINDS, PROBE


@dataclass
class Settings:
    """Defaults: the quick run (9 cases, well under a minute on 2 idle cores)."""

    workloads: tuple[str, ...] = workloads.QUICK
    optimizers: tuple[str, ...] = ("sgd_momentum", "adamw")
    dtypes: tuple[str, ...] = ("fp32", "bf16")
    # (workload, optimizer, dtype) cases run after the grid above: the quick
    # run's one 8-bit case. Naming workloads, optimizers or dtypes on the
    # command line drops them.
    extra_cases: tuple[tuple[str, str, str], ...] = (("16M", "adamw8bit", "fp32"),)
    # Whether the 8-bit cases time bitsandbytes and torchao (when installed):
    # seconds per step and a compile; see [note: third-party 8-bit references].
    eight_bit_references: bool = False
    warmup: int = 1
    rounds: int = 15
    min_rounds: int = 3
    max_seconds: float = 2.0  # per case, once min_rounds are done

    @classmethod
    def full(cls) -> Settings:
        return cls(
            workloads=workloads.FULL,
            optimizers=tuple(KINDS),
            warmup=2,
            rounds=30,
            min_rounds=5,
            max_seconds=8.0,
            extra_cases=(),
            eight_bit_references=True,
        )


@dataclass
class ImplResult:
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int
    gbps: float
    percent_of_limit: float
    fusedoptim_speedup: float | None  # this implementation's median / fusedoptim's
    first_ms: float | None = None  # the first step on these params (see timing.Timing.first)


@dataclass
class CaseResult:
    workload: str
    workload_label: str
    optimizer: str
    optimizer_label: str
    dtype: str
    num_tensors: int
    numel: int
    bytes_per_step: int
    limit_gbps: float
    limit_ms: float
    implementations: dict[str, ImplResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # Timed, but not compared: see [note: verifying the references].
    wrong: dict[str, str] = field(default_factory=dict)
    eight_bit: bool = False  # fusedoptim's optimizer keeps 8-bit state

    @property
    def title(self) -> str:
        return f"{self.optimizer_label} {self.dtype}, {self.workload_label}"


Progress = Callable[[str], None]


def cases(settings: Settings) -> list[tuple[workloads.Workload, str, str]]:
    for name in settings.optimizers:
        if name not in KINDS:
            raise ValueError(f"unknown optimizer {name!r}: choose from {', '.join(KINDS)}")
    for name in settings.dtypes:
        if name not in implementations.DTYPES:
            raise ValueError(
                f"unknown dtype {name!r}: choose from {', '.join(implementations.DTYPES)}"
            )
    for _, optimizer, dtype in settings.extra_cases:
        if optimizer not in KINDS or dtype not in implementations.DTYPES:
            raise ValueError(f"unknown optimizer or dtype in the case {optimizer!r}, {dtype!r}")
    loads = [workloads.parse(w) for w in settings.workloads]
    todo = [(w, o, d) for w in loads for o in settings.optimizers for d in settings.dtypes]
    for name, optimizer, dtype in settings.extra_cases:
        load = workloads.parse(name)
        if (load.name, optimizer, dtype) not in {(w.name, o, d) for w, o, d in todo}:
            todo.append((load, optimizer, dtype))
    return todo


def run_case(
    workload: workloads.Workload,
    optimizer: str,
    dtype: str,
    settings: Settings,
    progress: Progress | None = None,
) -> CaseResult:
    kind = KINDS[optimizer]
    references = settings.eight_bit_references
    wrong = implementations.wrong_results(kind, implementations.DTYPES[dtype], references)
    params = implementations.make_params(workload.shapes, implementations.DTYPES[dtype])
    impls = implementations.implementations(kind, params, references)
    probe, probe_bytes = implementations.probe(kind, params)
    timed = {i.name: i.step for i in impls + [probe] if i.step is not None}

    def on_round(r: int) -> None:
        if progress is not None:
            progress(f"round {r}")

    timings = timing.interleaved(
        timed,
        warmup=settings.warmup,
        rounds=settings.rounds,
        min_rounds=settings.min_rounds,
        max_seconds=settings.max_seconds,
        on_round=on_round,
    )
    bytes_per_step = kind.bytes_per_step(workload.shapes, implementations.DTYPES[dtype])
    limit = timings.pop(PROBE)
    limit_gbps = probe_bytes / limit.median / 1e9
    ours = timings.get(FUSEDOPTIM)
    result = CaseResult(
        workload=workload.name,
        workload_label=workload.label,
        optimizer=kind.name,
        optimizer_label=kind.label,
        dtype=dtype,
        num_tensors=workload.num_tensors,
        numel=workload.numel,
        bytes_per_step=bytes_per_step,
        limit_gbps=limit_gbps,
        limit_ms=limit.median * 1e3,
        skipped={i.name: i.skipped for i in impls if i.step is None},
        wrong=wrong,
        eight_bit=kind.eight_bit,
    )
    for name, t in timings.items():
        gbps = bytes_per_step / t.median / 1e9
        result.implementations[name] = ImplResult(
            median_ms=t.median * 1e3,
            min_ms=t.min * 1e3,
            max_ms=t.max * 1e3,
            runs=len(t.times),
            gbps=gbps,
            percent_of_limit=100.0 * gbps / limit_gbps,
            fusedoptim_speedup=(
                t.median / ours.median if ours is not None and name not in wrong else None
            ),
            first_ms=None if t.first is None else t.first * 1e3,
        )
    del impls, probe, timed, params
    gc.collect()
    return result


@dataclass
class SuiteResult:
    environment: dict
    settings: Settings
    cases: list[CaseResult] = field(default_factory=list)
    load_average_end: tuple[float, float, float] | None = None


def run_suite(
    settings: Settings,
    on_case_start: Callable[[int, int, str], Progress | None] | None = None,
    on_case_done: Callable[[CaseResult], None] | None = None,
) -> SuiteResult:
    """Runs every case; ``on_case_start(index, total, title)`` may return a progress
    callback for the rounds, ``on_case_done(result)`` sees each result as it comes."""
    todo = cases(settings)
    result = SuiteResult(environment.describe(), settings)
    for index, (workload, optimizer, dtype) in enumerate(todo):
        title = f"{KINDS[optimizer].label} {dtype}, {workload.label}"
        progress = on_case_start(index, len(todo), title) if on_case_start else None
        case = run_case(workload, optimizer, dtype, settings, progress)
        result.cases.append(case)
        if on_case_done is not None:
            on_case_done(case)
    result.load_average_end = environment.load_average()
    return result
