"""Turns suite results into a terminal table, JSON and (with matplotlib) a PNG."""

from __future__ import annotations

import dataclasses
import json
import math

from fusedoptim._bench import environment
from fusedoptim._bench.implementations import (
    BITSANDBYTES,
    EIGHT_BIT_LIBRARIES,
    FUSEDOPTIM,
    FUSEDOPTIM_FLOAT,
    PLAIN_C,
    TORCH_FOR_LOOP,
    TORCH_FOREACH,
    TORCH_FUSED,
    TORCHAO,
)
from fusedoptim._bench.suite import CaseResult, ImplResult, SuiteResult

SCHEMA = "fusedoptim-bench/1"


def table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Columns padded to fit; the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}x"


def _bytes(x: float) -> str:
    return f"{x:.0f}" if x == round(x) else f"{x:.2f}"


def format_case(case: CaseResult) -> str:
    per_element = case.bytes_per_step / case.numel
    head = (
        f"{case.title}: {case.numel:,} elements in {case.num_tensors} tensor(s), "
        f"{_bytes(per_element)} B/element, {case.bytes_per_step / 1e6:.0f} MB/step"
    )
    columns = ["implementation", "median ms", "min - max ms", "runs", "GB/s", "% limit", "vs ours"]
    if case.eight_bit:
        # The first step allocates the state (and torchao compiles): its time
        # against the warm median is part of what an 8-bit optimizer costs.
        columns += ["first step ms", "first / median"]
    rows = []
    for name, r in case.implementations.items():
        row = [
            name,
            _ms(r.median_ms),
            f"{_ms(r.min_ms)} - {_ms(r.max_ms)}",
            str(r.runs),
            f"{r.gbps:.1f}",
            f"{r.percent_of_limit:.0f}%",
            "wrong" if name in case.wrong else _ratio(r.fusedoptim_speedup),
        ]
        if case.eight_bit:
            row += _first(r)
        rows.append(row)
    rows.append(["bandwidth limit (probe)", _ms(case.limit_ms), "", "", f"{case.limit_gbps:.1f}"])
    rows = [r + [""] * (len(columns) - len(r)) for r in rows]
    lines = [head, table(columns, rows)]
    for name, why in case.skipped.items():
        lines.append(f"  (not timed: {name}: {why})")
    for name, why in case.wrong.items():
        lines.append(f"  (not compared: {name}: {why})")
    return "\n".join(lines)


def _first(r: ImplResult) -> list[str]:
    if r.first_ms is None:
        return ["-", "-"]
    return [_ms(r.first_ms), _ratio(r.first_ms / r.median_ms)]


def _speedup(case: CaseResult, name: str) -> str:
    """The "vs X" cell: X's median over fusedoptim's, or "wrong" (see the suite's
    verification), or "-" where X did not run."""
    if name in case.wrong:
        return "wrong"
    r = case.implementations.get(name)
    return _ratio(r.fusedoptim_speedup) if r else "-"


def summary(result: SuiteResult) -> str:
    rows = []
    for c in result.cases:
        ours = c.implementations.get(FUSEDOPTIM)
        if ours is None or c.eight_bit:
            continue
        plain = c.implementations.get(PLAIN_C)

        rows.append(
            [
                c.workload,
                c.optimizer,
                c.dtype,
                _ms(ours.median_ms),
                f"{ours.gbps:.1f}",
                f"{ours.percent_of_limit:.0f}%",
                f"{100 * plain.median_ms / ours.median_ms:.0f}%" if plain else "-",
                _speedup(c, TORCH_FOR_LOOP),
                _speedup(c, TORCH_FOREACH),
                _speedup(c, TORCH_FUSED),
            ]
        )
    header = [
        "workload",
        "optimizer",
        "dtype",
        "ms/step",
        "GB/s",
        "% limit",
        "% plain C",
        "vs for-loop",
        "vs foreach",
        "vs fused",
    ]
    note = (
        "fusedoptim per case: median ms/step; % limit = GB/s over the in-place update "
        "probe's GB/s in the same loop;\n% plain C = plain C loop time / fusedoptim time; "
        "vs X = X's median / fusedoptim's (above 1: fusedoptim is faster); wrong = X's results "
        "differ from torch's for-loop (not compared)."
    )
    out = table(header, rows, left=3) + "\n" + note if rows else ""
    eight_bit = summary_8bit(result)
    return out + ("\n\n" if out and eight_bit else "") + eight_bit


def summary_8bit(result: SuiteResult) -> str:
    """The 8-bit cases: fusedoptim's 8-bit step against its float-state step,
    torch and the 8-bit libraries, and its first step against its warm median."""
    rows = []
    for c in result.cases:
        ours = c.implementations.get(FUSEDOPTIM)
        if ours is None or not c.eight_bit:
            continue
        libraries = [n for n in c.implementations if n.split(" ")[0] in EIGHT_BIT_LIBRARIES]

        def library(prefix: str, names: list[str] = libraries, case: CaseResult = c) -> str:
            return next((_speedup(case, n) for n in names if n.startswith(prefix + " ")), "-")

        rows.append(
            [
                c.workload,
                c.optimizer,
                c.dtype,
                _ms(ours.median_ms),
                f"{ours.gbps:.1f}",
                *_first(ours),
                _speedup(c, FUSEDOPTIM_FLOAT),
                _speedup(c, TORCH_FUSED),
                library(BITSANDBYTES),
                library(TORCHAO),
            ]
        )
    if not rows:
        return ""
    header = [
        "workload",
        "optimizer",
        "dtype",
        "ms/step",
        "GB/s",
        "first step ms",
        "first / median",
        "vs float state",
        "vs torch fused",
        "vs bitsandbytes",
        "vs torchao",
    ]
    note = (
        "8-bit state, fusedoptim per case: median ms/step and the first step's time; vs X = "
        "X's median / fusedoptim's 8-bit step's\n(float state: fusedoptim's optimizer of the "
        "same update with float state; bitsandbytes, torchao: their 8-bit optimizer of that "
        "name;\n- = not installed or not timed, see --details)."
    )
    return table(header, rows, left=3) + "\n" + note


def header(result: SuiteResult) -> str:
    return environment.summary_line(result.environment)


def footer(result: SuiteResult) -> str:
    load = result.load_average_end
    return "load average at end: " + ("n/a" if load is None else " ".join(f"{x:.2f}" for x in load))


def to_json(result: SuiteResult, training_loop: dict | None = None) -> dict:
    out = {
        "schema": SCHEMA,
        "environment": result.environment,
        "load_average_end": result.load_average_end,
        "settings": dataclasses.asdict(result.settings),
        "cases": [dataclasses.asdict(c) for c in result.cases],
    }
    if training_loop is not None:
        out["training_loop"] = training_loop
    return out


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def plot(result: SuiteResult, path: str) -> str:
    """Writes a PNG (ms/step per case, bars grouped by implementation); returns a
    message saying where, or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib)"
    names: list[str] = []
    for c in result.cases:
        names += [n for n in c.implementations if n not in names]
    cases = result.cases
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(cases) + 2), 4.5))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [k + i * width for k, c in enumerate(cases) if name in c.implementations]
        ys = [c.implementations[name].median_ms for c in cases if name in c.implementations]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(cases))])
    ax.set_xticklabels(
        [f"{c.workload}\n{c.optimizer} {c.dtype}" for c in cases], fontsize=7, rotation=0
    )
    ax.set_yscale("log")
    ax.set_ylabel("ms per step (median, log scale)")
    ax.set_title(header(result), fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"
