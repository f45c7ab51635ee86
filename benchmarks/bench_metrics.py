"""Confusion matrix + macro F1 on many labels: fusedoptim vs scikit-learn (and
torchmetrics when installed), measured in the same run.

    PYTHONPATH=python python benchmarks/bench_metrics.py [--n 10000000] [--classes 100]

Prints one line per case (median and min over --repeats timed runs after --warmup
untimed ones, and the ratio to scikit-learn's median) and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

import fusedoptim
from fusedoptim import _backend
from fusedoptim import metrics as fm


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cases(t_np, p_np, classes):
    t = torch.from_numpy(t_np)
    p = torch.from_numpy(p_np)
    t32, p32 = t.to(torch.int32), p.to(torch.int32)

    def stateful():
        cm = fm.ConfusionMatrix(classes)
        f1 = fm.F1Score(classes, average="macro", share_state_with=cm)
        cm.update(t, p)
        return cm.compute(), f1.compute()

    def kernel(a, b):
        counts = torch.zeros((classes, classes), dtype=torch.int64)
        _backend.confusion_matrix_add_(counts, a, b)
        return counts

    yield "fusedoptim kernel only (int64 labels)", lambda: kernel(t, p)
    yield "fusedoptim kernel only (int32 labels)", lambda: kernel(t32, p32)
    yield "fusedoptim stateful: ConfusionMatrix + F1Score, one update", stateful
    yield (
        "fusedoptim confusion_matrix + f1_score (numpy)",
        lambda: (
            fm.confusion_matrix(t_np, p_np),
            fm.f1_score(t_np, p_np, average="macro"),
        ),
    )
    yield (
        "torch.bincount(t * C + p) (reference)",
        lambda: torch.bincount(t * classes + p, minlength=classes * classes),
    )
    try:
        import torchmetrics.functional.classification as tmf
    except ImportError:
        pass
    else:
        yield (
            "torchmetrics confusion_matrix + f1_score",
            lambda: (
                tmf.multiclass_confusion_matrix(p, t, num_classes=classes),
                tmf.multiclass_f1_score(p, t, num_classes=classes, average="macro"),
            ),
        )
    try:
        import sklearn.metrics as skm
    except ImportError:
        pass
    else:
        yield (
            "sklearn confusion_matrix + f1_score",
            lambda: (
                skm.confusion_matrix(t_np, p_np),
                skm.f1_score(t_np, p_np, average="macro"),
            ),
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="labels per call")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch/fusedoptim threads")
    parser.add_argument("--json", default="bench_results/bench_metrics.json")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    t_np = rng.integers(0, args.classes, args.n)
    # 60% correct predictions, the rest uniform: a realistic, not adversarial, table.
    p_np = np.where(rng.random(args.n) < 0.6, t_np, rng.integers(0, args.classes, args.n))

    try:
        import sklearn.metrics as skm

        ours = fm.f1_score(t_np, p_np, average="macro")
        ref = skm.f1_score(t_np, p_np, average="macro")
        assert abs(ours - ref) <= 1e-12 * abs(ref), (ours, ref)
        assert np.array_equal(fm.confusion_matrix(t_np, p_np), skm.confusion_matrix(t_np, p_np))
    except ImportError:
        pass

    results = []
    for name, fn in cases(t_np, p_np, args.classes):
        times = timed(fn, args.warmup, args.repeats)
        results.append(
            {"case": name, "median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times)}
        )
    sk = next((r["median_ms"] for r in results if r["case"].startswith("sklearn")), None)
    print(
        f"n={args.n:,} classes={args.classes} threads={torch.get_num_threads()} "
        f"repeats={args.repeats}"
    )
    for r in results:
        r["speedup_vs_sklearn"] = None if sk is None else sk / r["median_ms"]
        ratio = "" if sk is None else f"  {r['speedup_vs_sklearn']:7.1f}x vs sklearn"
        print(f"{r['case']:<60} median {r['median_ms']:9.2f} ms  min {r['min_ms']:9.2f} ms{ratio}")

    report = {
        "benchmark": "bench_metrics",
        "n": args.n,
        "classes": args.classes,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "fusedoptim_build": fusedoptim._backend._C.build_info(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": results,
    }
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
