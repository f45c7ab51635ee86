"""Feature standardization of a large float32 matrix: fusedoptim.preprocessing.StandardScaler
vs scikit-learn's StandardScaler (on the same data as a numpy array) vs the three-pass torch
expression ``(x - x.mean(0)) / x.std(0)``, fit and transform timed separately, in one
interleaved loop, against the memory bandwidth measured in the same run.

    PYTHONPATH=python python benchmarks/bench_preprocessing.py [--rows 10000000] [--features 64]

Prints one line per case (median and min of --repeats timed runs after --warmup untimed
ones, GB/s, % of the bandwidth probe, and scikit-learn's median over the case's) and
writes them as JSON. GB/s counts the bytes a case must move at least: a fit reads the
matrix once, a transform reads it and writes the result, in place too (fusedoptim's
in-place transform reads it twice: it checks for infinities before writing anything).

A transform into new memory also pays the kernel's first-touch page faults, which cost
more than the transform itself on small VMs: numpy asks for transparent huge pages for
large arrays (fewer faults), torch does not unless THP_MEM_ALLOC_ENABLE=1 is set, so
the "-> new" rows differ by that; out= and copy=False reuse memory and pay none.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import fusedoptim
from fusedoptim import _backend
from fusedoptim.preprocessing import StandardScaler

PROBE_ELEMENTS = 16 * 2**20  # 64 MiB per array: past the last-level cache


def bandwidth_probe():
    """(run, bytes): fusedoptim bench's bandwidth line, a = a * s + b over 64 MiB arrays
    (read 2, write 1), on the same threads as the cases."""
    a, b = torch.rand(PROBE_ELEMENTS), torch.rand(PROBE_ELEMENTS)
    run = _backend.bandwidth_probe([a], b, 0.5)
    return (lambda keep=(a, b): run()), 3 * 4 * PROBE_ELEMENTS


@dataclass
class Case:
    name: str
    kind: str  # "fit", "transform" or "probe"
    nbytes: int  # bytes the case must move at least
    run: Callable[[], object]
    setup: Callable[[], None] | None = None  # untimed, before each run


def cases(x: torch.Tensor, x_np: np.ndarray, fitted: StandardScaler, with_sklearn: bool):
    """Every timed case; each frees what it allocates before the next one runs."""
    nbytes = x.numel() * x.element_size()
    scratch = torch.empty_like(x)  # out= writes here, and copy=False transforms a copy of x here
    mean, std = x.mean(0), x.std(0)
    yield Case(
        "fusedoptim StandardScaler.fit (tensor)", "fit", nbytes, lambda: StandardScaler().fit(x)
    )
    yield Case(
        "fusedoptim StandardScaler.fit (numpy)", "fit", nbytes, lambda: StandardScaler().fit(x_np)
    )
    yield Case("torch x.mean(0), x.std(0)", "fit", nbytes, lambda: (x.mean(0), x.std(0)))
    if with_sklearn:
        import sklearn.preprocessing as skp

        yield Case(
            "sklearn StandardScaler.fit (numpy)",
            "fit",
            nbytes,
            lambda: skp.StandardScaler().fit(x_np),
        )
    yield Case(
        "fusedoptim transform -> new tensor", "transform", 2 * nbytes, lambda: fitted.transform(x)
    )
    yield Case(
        "fusedoptim transform (numpy) -> new array",
        "transform",
        2 * nbytes,
        lambda: fitted.transform(x_np),
    )
    yield Case(
        "fusedoptim transform(out=)",
        "transform",
        2 * nbytes,
        lambda: fitted.transform(x, out=scratch),
    )
    yield Case(
        "fusedoptim transform(copy=False)",
        "transform",
        2 * nbytes,
        lambda: fitted.transform(scratch, copy=False),
        setup=lambda: scratch.copy_(x),
    )
    yield Case("torch (x - mean) / std", "transform", 2 * nbytes, lambda: (x - mean) / std)
    if with_sklearn:
        sk = skp.StandardScaler().fit(x_np)
        yield Case("sklearn transform (numpy)", "transform", 2 * nbytes, lambda: sk.transform(x_np))


def timed(case: Case) -> float:
    if case.setup is not None:
        case.setup()
    gc.collect()
    start = time.perf_counter()
    case.run()
    return time.perf_counter() - start


def check_results(x_np: np.ndarray) -> None:
    """fusedoptim against scikit-learn on the first rows, before timing anything."""
    import sklearn.preprocessing as skp

    head = x_np[:200_000]
    ours, sk = StandardScaler().fit(head), skp.StandardScaler().fit(head)
    assert np.allclose(ours.mean_, sk.mean_, rtol=1e-10, atol=0)
    assert np.allclose(ours.scale_, sk.scale_, rtol=1e-10, atol=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch/fusedoptim threads")
    parser.add_argument("--no-sklearn", action="store_true", help="leave scikit-learn out")
    parser.add_argument("--json", default="bench_results/bench_preprocessing.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, args.features, generator=generator)
    x.mul_(torch.rand(args.features, generator=generator) * 4 + 0.5)
    x.add_(torch.randn(args.features, generator=generator) * 10)
    x_np = x.numpy()  # the same memory: every library reads the same bytes
    with_sklearn = not args.no_sklearn
    if with_sklearn:
        check_results(x_np)
    fitted = StandardScaler().fit(x)
    probe, probe_bytes = bandwidth_probe()

    all_cases = [Case("bandwidth probe", "probe", probe_bytes, probe)]
    all_cases += list(cases(x, x_np, fitted, with_sklearn))
    times = {case.name: [] for case in all_cases}
    for round_index in range(args.warmup + args.repeats):
        for case in all_cases:  # interleaved: the machine's noise hits every case alike
            elapsed = timed(case)
            if round_index >= args.warmup:
                times[case.name].append(elapsed)

    probe_gbps = probe_bytes / statistics.median(times["bandwidth probe"]) / 1e9
    medians = {name: statistics.median(t) for name, t in times.items()}
    sklearn_median = {
        kind: next(
            (medians[c.name] for c in all_cases if c.kind == kind and "sklearn" in c.name), None
        )
        for kind in ("fit", "transform")
    }
    print(
        f"{args.rows:,} x {args.features} float32 ({x.numel() * 4 / 1e9:.2f} GB), "
        f"threads={torch.get_num_threads()}, repeats={args.repeats}, "
        f"bandwidth probe {probe_gbps:.1f} GB/s"
    )
    results = []
    for case in all_cases:
        name, kind, nbytes = case.name, case.kind, case.nbytes
        if kind == "probe":
            continue
        median = medians[name]
        gbps = nbytes / median / 1e9
        vs = sklearn_median[kind] / median if sklearn_median[kind] else None
        results.append(
            {
                "case": name,
                "kind": kind,
                "median_s": median,
                "min_s": min(times[name]),
                "gb_per_s": gbps,
                "percent_of_probe": 100 * gbps / probe_gbps,
                "sklearn_over_this": vs,
            }
        )
        ratio = f"  {vs:6.1f}x vs sklearn" if vs else ""
        print(
            f"{name:<42} median {median * 1e3:9.1f} ms  min {min(times[name]) * 1e3:9.1f} ms  "
            f"{gbps:6.1f} GB/s ({100 * gbps / probe_gbps:3.0f}% of probe){ratio}"
        )

    totals = {
        "fusedoptim fit + transform": medians["fusedoptim StandardScaler.fit (tensor)"]
        + medians["fusedoptim transform -> new tensor"],
        "torch (x - x.mean(0)) / x.std(0)": medians["torch x.mean(0), x.std(0)"]
        + medians["torch (x - mean) / std"],
    }
    if with_sklearn:
        totals["sklearn fit + transform"] = (
            medians["sklearn StandardScaler.fit (numpy)"] + medians["sklearn transform (numpy)"]
        )
    ours_total = totals["fusedoptim fit + transform"]
    for name, total in totals.items():
        print(f"{name:<42} sum of medians {total * 1e3:9.1f} ms  ({total / ours_total:.1f}x ours)")

    report = {
        "benchmark": "bench_preprocessing",
        "rows": args.rows,
        "features": args.features,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "probe_gb_per_s": probe_gbps,
        "torch": torch.__version__,
        "fusedoptim_build": fusedoptim._backend._C.build_info(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": results,
        "fit_plus_transform_s": totals,
    }
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
