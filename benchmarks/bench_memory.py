"""Optimizer state memory and peak step memory: fusedoptim's float and 8-bit
optimizers, torch.optim.AdamW, and bitsandbytes' and torchao's 8-bit optimizers
when they are installed, on one 16M tensor and GPT-2 small shapes.

For each optimizer: the state's bytes per parameter, counted from the state
tensors after two steps (``sum(t.numel() * t.element_size())`` over
``optimizer.state``, a tensor subclass through its inner tensors), over all
params and over those of at least min_8bit_size (4096) elements; and the peak
extra resident memory during a warm step (VmHWM after the step minus VmRSS
before it, the high-water mark reset through /proc/self/clear_refs; see
[note: peak step memory] in fusedoptim/_bench/memory.py), per parameter and as
a share of the state's size. Each workload first checks the measurement on
itself: an empty step (the noise floor) and steps that allocate one temporary
of a known size. Then a worked example: a 1.3B-parameter model's Adam state
from the measured bytes per parameter.

    PYTHONPATH=python python benchmarks/bench_memory.py [--workloads 16M,gpt2]
        [--steps 3] [--threads N] [--json PATH]

With bitsandbytes and torchao in another environment of the same Python (as
for the suite): PYTHONPATH=python /path/to/venv-ref/bin/python benchmarks/...
torchao compiles its step on the first call (tens of seconds for GPT-2 shapes).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import statistics
import sys
import time

import torch

import fusedoptim
from fusedoptim._bench import environment, memory, report, workloads
from fusedoptim._bench.implementations import make_params
from fusedoptim.optim._state_precision import DEFAULT_MIN_8BIT_SIZE

WORKED_EXAMPLE_PARAMS = 1_300_000_000
ADAMW = {"lr": 1e-3, "weight_decay": 1e-2}
SGD_MOMENTUM = {"lr": 1e-3, "momentum": 0.9}


def _library(module: str, name: str, kwargs: dict):
    def build(params):
        cls = getattr(importlib.import_module(module), name)
        return cls(params, **kwargs)

    return build


def _torch(flags: dict):
    return lambda params: torch.optim.AdamW(params, **ADAMW, **flags)


# (name, state precision, build(params) -> optimizer)
OPTIMIZERS = [
    ("fusedoptim AdamW", "fp32", lambda ps: fusedoptim.AdamW(ps, **ADAMW)),
    ("fusedoptim AdamW8bit", "8-bit", lambda ps: fusedoptim.AdamW8bit(ps, **ADAMW)),
    ("fusedoptim Adam8bit", "8-bit", lambda ps: fusedoptim.Adam8bit(ps, lr=1e-3)),
    ("fusedoptim SGD momentum", "fp32", lambda ps: fusedoptim.SGD(ps, **SGD_MOMENTUM)),
    ("fusedoptim SGD8bit momentum", "8-bit", lambda ps: fusedoptim.SGD8bit(ps, **SGD_MOMENTUM)),
    ("torch.optim.AdamW for-loop", "fp32", _torch({"foreach": False})),
    ("torch.optim.AdamW foreach", "fp32", _torch({"foreach": True})),
    ("torch.optim.AdamW fused", "fp32", _torch({"fused": True})),
    ("bitsandbytes AdamW8bit", "8-bit", _library("bitsandbytes.optim", "AdamW8bit", ADAMW)),
    ("bitsandbytes Adam8bit", "8-bit", _library("bitsandbytes.optim", "Adam8bit", {"lr": 1e-3})),
    (
        "bitsandbytes SGD8bit momentum",
        "8-bit",
        _library("bitsandbytes.optim", "SGD8bit", SGD_MOMENTUM),
    ),
    ("torchao AdamW8bit", "8-bit", _library("torchao.optim", "AdamW8bit", ADAMW)),
    ("torchao Adam8bit", "8-bit", _library("torchao.optim", "Adam8bit", {"lr": 1e-3})),
]


def measure(name, build, workload, rss, steps):
    params = make_params(workload.shapes, torch.float32)
    try:
        optimizer = build(params)
    except Exception as error:  # an optional library that is missing or fails
        return {"name": name, "skipped": f"{type(error).__name__}: {error}"}
    t0 = time.perf_counter()
    optimizer.step()  # creates the state (torchao: compiles)
    first_s = time.perf_counter() - t0
    optimizer.step()
    readings = [rss.measure(optimizer.step) for _ in range(steps)] if rss.problem is None else []
    counted = memory.state_bytes(optimizer)
    out = {
        "name": name,
        "params": counted.params,
        "state_bytes": counted.total,
        "state_bytes_per_param": counted.per_param,
        "large_params": counted.large_params,
        "state_bytes_per_large_param": counted.per_large_param,
        "state_by_key": counted.by_key,
        "peak_extra_bytes": [r.peak_extra for r in readings],
        "faulted_bytes": [r.faulted for r in readings],
        "step_s": [r.seconds for r in readings],
        "first_step_s": first_s,
    }
    del optimizer, params
    gc.collect()
    return out


def _mb(x: float) -> str:
    mb = x / 1e6
    return f"{mb:.3f}" if abs(mb) < 10 else f"{mb:.1f}" if abs(mb) < 1000 else f"{mb:.0f}"


def run(args) -> dict:
    rss = memory.PeakRss()
    if rss.problem:
        print(f"peak step memory not measured: {rss.problem}", flush=True)
    result = {
        "environment": environment.describe(),
        "peak_rss_method": None if rss.problem else "VmHWM reset by /proc/self/clear_refs",
        "transparent_huge_pages": rss.huge_pages,
        "workloads": {},
    }
    print(environment.summary_line(result["environment"]), flush=True)
    for workload_name in args.workloads:
        workload = workloads.parse(workload_name)
        largest = max(int(torch.Size(s).numel()) for s in workload.shapes)
        eight_bit_adam = 2 * workload.numel + 2 * 4 * workload.numel // 256
        checks = []
        if rss.problem is None:
            # (what, bytes allocated, bytes measured): the method checked on itself.
            empty = [rss.measure(lambda: None) for _ in range(3)]
            checks.append(("empty step (noise floor)", 0, empty))
            for what, nbytes in (
                ("one temporary of 1% of AdamW8bit's state", eight_bit_adam // 100),
                ("one fp32 temporary of the largest param", 4 * largest),
            ):
                checks.append((what, nbytes, memory.calibrate(rss, nbytes)))
        rows = []
        for name, precision, build in OPTIMIZERS:
            print(f"  {workload.name}: {name}", file=sys.stderr, flush=True)
            r = measure(name, build, workload, rss, args.steps)
            r["precision"] = precision
            rows.append(r)
        result["workloads"][workload.name] = {
            "label": workload.label,
            "numel": workload.numel,
            "num_tensors": workload.num_tensors,
            "checks": [
                {
                    "what": what,
                    "allocated": nbytes,
                    "peak_extra": [r.peak_extra for r in got],
                    "faulted": [r.faulted for r in got],
                }
                for what, nbytes, got in checks
            ],
            "optimizers": rows,
        }
        print()
        print(format_workload(workload, checks, rows))
    print()
    print(worked_example(result))
    result["load_average_end"] = environment.load_average()
    load = result["load_average_end"]
    print("load average at end: " + ("n/a" if load is None else " ".join(f"{x:.2f}" for x in load)))
    return result


def format_workload(workload, checks, rows) -> str:
    lines = [
        f"{workload.label}: {workload.numel:,} params in {workload.num_tensors} tensor(s) "
        f"({sum(1 for s in workload.shapes if torch.Size(s).numel() >= DEFAULT_MIN_8BIT_SIZE)} "
        f"of at least {DEFAULT_MIN_8BIT_SIZE} elements)"
    ]
    if checks:
        lines.append(
            "peak RSS method check (MB allocated: MB read by VmHWM / faulted in, 3 times):"
        )
        for what, expected, got in checks:
            read = ", ".join(f"{_mb(g.peak_extra)} / {_mb(g.faulted)}" for g in got)
            lines.append(f"  {what}: {_mb(expected)}: {read}")
    table_rows = []
    for r in rows:
        if "skipped" in r:
            continue
        peak = max(r["peak_extra_bytes"]) if r["peak_extra_bytes"] else None
        bound = max(r["faulted_bytes"]) if r["faulted_bytes"] else None
        table_rows.append(
            [
                r["name"],
                r["precision"],
                _mb(r["state_bytes"]),
                f"{r['state_bytes_per_param']:.3f}",
                f"{r['state_bytes_per_large_param']:.3f}",
                "-" if peak is None else _mb(peak),
                "-" if peak is None else f"{peak / r['params']:.3f}",
                "-" if peak is None else f"{100 * peak / r['state_bytes']:.2f}%",
                "-" if bound is None else _mb(bound),
                "-" if bound is None else f"{100 * bound / r['state_bytes']:.2f}%",
            ]
        )
    header = [
        "optimizer",
        "state",
        "state MB",
        "B/param",
        f"B/param (>= {DEFAULT_MIN_8BIT_SIZE})",
        "step peak extra MB",
        "peak B/param",
        "peak % of state",
        "faulted MB",
        "faulted % of state",
    ]
    lines.append(report.table(header, table_rows, left=2))
    for r in rows:
        if "skipped" in r:
            lines.append(f"  (not measured: {r['name']}: {r['skipped']})")
    lines.append(
        "B/param: state bytes over all params (and over params of at least "
        f"{DEFAULT_MIN_8BIT_SIZE} elements); step peak extra: the largest over the warm "
        "steps of VmHWM minus VmRSS before the step;\nfaulted: the most pages faulted in by "
        "one of those steps, times the page size (an upper bound on the peak)."
    )
    timed = [r for r in rows if "skipped" not in r and r["step_s"]]
    if timed:
        lines.append(
            "first step (state allocated on fresh pages; torchao: its compile) against the "
            "warm steps above (median; not interleaved):"
        )
        first_rows = []
        for r in timed:
            warm = statistics.median(r["step_s"])
            first_rows.append(
                [
                    r["name"],
                    f"{1e3 * r['first_step_s']:.1f}",
                    f"{1e3 * warm:.1f}",
                    f"{r['first_step_s'] / warm:.2f}x",
                ]
            )
        lines.append(
            report.table(["optimizer", "first step ms", "warm ms", "first / warm"], first_rows)
        )
    return "\n".join(lines)


def worked_example(result: dict) -> str:
    """Adam state of a 1.3B-parameter model from the measured bytes per parameter
    (of params above the 8-bit threshold, as in a large model)."""
    for load in result["workloads"].values():
        measured = {r["name"]: r for r in load["optimizers"] if "skipped" not in r}
        fp32 = measured.get("fusedoptim AdamW")
        eight = measured.get("fusedoptim AdamW8bit")
        if fp32 and eight:
            a = fp32["state_bytes_per_large_param"]
            b = eight["state_bytes_per_large_param"]
            n = WORKED_EXAMPLE_PARAMS
            return (
                f"worked example: a {n / 1e9:.1f}B-parameter model's AdamW state is "
                f"{n * a / 1e9:.1f} GB with fp32 state ({a:.3f} B/param) and "
                f"{n * b / 1e9:.2f} GB with 8-bit state ({b:.3f} B/param), measured on "
                f"{load['label']}"
            )
    return "worked example: needs fusedoptim AdamW and AdamW8bit measured"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="16M,gpt2", help="comma-separated, as the suite's")
    parser.add_argument("--steps", type=int, default=3, help="warm steps measured per optimizer")
    parser.add_argument("--threads", type=int, help="torch and fusedoptim threads")
    parser.add_argument("--json", default="bench_results/bench_memory.json")
    args = parser.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = run(args)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    report.write_json(args.json, result)
    print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
