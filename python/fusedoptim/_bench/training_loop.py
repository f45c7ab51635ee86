"""The step inside a real training loop: an MLP's forward + backward + step, with
torch's own threads busy in forward and backward, against the same step timed
alone. The question is whether our pool and torch's threads fight over the cores
(the target: the step no more than 10% slower in the loop than alone)."""

from __future__ import annotations

import copy
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import fusedoptim
from fusedoptim._bench import report


@dataclass
class LoopSettings:
    layers: int = 4
    width: int = 2048
    batch: int = 64
    rounds: int = 6
    block: int = 4  # consecutive iterations (or lone steps) per implementation and round
    warmup: int = 2


def _optimizers() -> dict[str, Callable]:
    kwargs = {"lr": 1e-4, "weight_decay": 1e-2}
    return {
        "fusedoptim AdamW": lambda ps: fusedoptim.AdamW(ps, **kwargs),
        "torch AdamW fused": lambda ps: torch.optim.AdamW(ps, fused=True, **kwargs),
        "torch AdamW for-loop": lambda ps: torch.optim.AdamW(ps, foreach=False, **kwargs),
    }


def run(settings: LoopSettings, progress: Callable[[str], None] | None = None) -> dict:
    torch.manual_seed(0)
    blocks = []
    for _ in range(settings.layers):
        blocks += [torch.nn.Linear(settings.width, settings.width), torch.nn.ReLU()]
    base = torch.nn.Sequential(*blocks)
    x = torch.randn(settings.batch, settings.width)
    y = torch.randn(settings.batch, settings.width)
    runs = {}
    for name, build in _optimizers().items():
        model = copy.deepcopy(base)
        runs[name] = (model, build(model.parameters()))

    def iteration(model, optimizer) -> tuple[float, float]:
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        t1 = time.perf_counter()
        optimizer.step()
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1

    def lone_step(optimizer) -> float:
        t0 = time.perf_counter()
        optimizer.step()
        return time.perf_counter() - t0

    for model, optimizer in runs.values():
        for _ in range(settings.warmup):
            iteration(model, optimizer)
    names = list(runs)
    iters = {n: [] for n in names}
    in_loop = {n: [] for n in names}
    alone = {n: [] for n in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(settings.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for n in order:
                for _ in range(settings.block):
                    total, step = iteration(*runs[n])
                    iters[n].append(total)
                    in_loop[n].append(step)
            for n in order:
                for _ in range(settings.block):
                    alone[n].append(lone_step(runs[n][1]))
            if progress is not None:
                progress(f"round {r + 1}/{settings.rounds}")
    finally:
        gc.enable()

    results = {}
    for n in names:
        it, st, al = (statistics.median(v) * 1e3 for v in (iters[n], in_loop[n], alone[n]))
        results[n] = {
            "iteration_ms": it,
            "step_in_loop_ms": st,
            "step_in_loop_min_max_ms": [min(in_loop[n]) * 1e3, max(in_loop[n]) * 1e3],
            "step_alone_ms": al,
            "step_alone_min_max_ms": [min(alone[n]) * 1e3, max(alone[n]) * 1e3],
            "step_share_of_iteration": st / it,
            "in_loop_vs_alone": st / al,
            "runs": len(in_loop[n]),
        }
    params = sum(p.numel() for p in base.parameters())
    return {
        "model": f"MLP {settings.layers} x Linear({settings.width}, {settings.width}) + ReLU",
        "params": params,
        "batch": settings.batch,
        "torch_threads": torch.get_num_threads(),
        "implementations": results,
    }


def format_result(result: dict) -> str:
    rows = []
    for name, r in result["implementations"].items():
        rows.append(
            [
                name,
                f"{r['iteration_ms']:.1f}",
                f"{r['step_in_loop_ms']:.2f}",
                f"{r['step_alone_ms']:.2f}",
                f"{100 * r['step_share_of_iteration']:.1f}%",
                f"{100 * (r['in_loop_vs_alone'] - 1):+.0f}%",
            ]
        )
    head = (
        f"Training loop: {result['model']} ({result['params'] / 1e6:.1f}M params), batch "
        f"{result['batch']}, torch threads {result['torch_threads']}; medians over "
        f"{next(iter(result['implementations'].values()))['runs']} iterations each"
    )
    return (
        head
        + "\n"
        + report.table(
            [
                "optimizer",
                "iteration ms",
                "step in loop ms",
                "step alone ms",
                "step share",
                "in loop vs alone",
            ],
            rows,
        )
    )
