"""Training quality of 8-bit optimizer state (issue 14): real training runs with
fp32 AdamW and the 8-bit AdamWs, and the round-trip error of each 8-bit map on
real Adam moments.

Tasks (CPU, seeded, deterministic for a given machine and library versions):

- ``digits``: an MLP 64-256-256-10 on scikit-learn's digits (pixels / 16, a
  fixed 80/20 split), minibatch 64; reports the final loss on the whole train
  set (the quality number) and test accuracy.
- ``charlm``: a 2-layer causal transformer (d=128, 4 heads, context 64) on
  400 KB of the Python standard library's own source (a fixed list of
  modules, ASCII), batch 32; reports the final loss on a fixed held-out slice.

Every optimizer gets the same lr, betas, eps and weight_decay, the same
initial weights and the same batches for a given seed: torch.optim.AdamW (the
fp32 reference), fusedoptim.AdamW, fusedoptim.AdamW8bit and, where installed,
torchao's AdamW8bit, AdamWFp8 and AdamW4bit and bitsandbytes' AdamW8bit
(optional references, imported here only; a missing library or an optimizer
that fails on this machine is skipped with the reason). A loss that turns
non-finite stops the run and is reported as a divergence.

The round trip: the fp32 AdamW run of the first seed saves every exp_avg /
exp_avg_sq of >= 4096 elements at step 50 and at the end; each 8-bit map
encodes and decodes them with its library's own functions (block size 256,
torchao's 4-bit 128, as their optimizers use). Reported per map: the share of
nonzero values that decode to 0, the median and 99th percentile relative
error of the nonzero values and, for the second moment, how much larger an
element's Adam step becomes with the decoded second moment than with the exact
one (the worst over elements with a nonzero first moment).

Wall times are printed per run for orientation only (the torchao optimizers
compile with torch.compile on their first steps): not a speed measurement.

    PYTHONPATH=python /work/venv-ref/bin/python benchmarks/quality_8bit.py
        [--tasks digits,charlm] [--seeds 0,1,2] [--steps N] [--optimizers ...]
        [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import math
import os
import statistics
import sys
import sysconfig
import time
from collections.abc import Iterator
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fusedoptim._bench import environment, report
from fusedoptim.optim import _state_precision

SCHEMA = "fusedoptim-quality-8bit/1"
EPS = 1e-8
CAPTURE_STEP = 50  # the early snapshot of the round trip (the other is the last step)
MIN_8BIT_SIZE = 4096  # all three libraries' default threshold for 8-bit state

# ---------------------------------------------------------------------------
# Tasks


@dataclasses.dataclass
class Task:
    name: str
    title: str
    metric: str  # the quality number: what `evaluate` returns under "loss"
    steps: int
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    build_model: Callable[[], nn.Module]
    batches: Callable[[torch.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module], dict]
    data: dict


def digits_task() -> Task:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    # One split for every seed: seeds vary the initial weights and batch order only.
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_train = int(0.8 * len(y))
    x_train, y_train = x[order[:n_train]], y[order[:n_train]]
    x_test, y_test = x[order[n_train:]], y[order[n_train:]]
    batch = 64

    def build_model() -> nn.Module:
        return nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )

    def batches(generator: torch.Generator):
        while True:  # shuffled epochs; the last partial batch of each is dropped
            perm = torch.randperm(n_train, generator=generator)
            for start in range(0, n_train - batch + 1, batch):
                idx = perm[start : start + batch]
                yield x_train[idx], y_train[idx]

    def loss(model, xb, yb):
        return F.cross_entropy(model(xb), yb)

    @torch.no_grad()
    def evaluate(model) -> dict:
        model.eval()
        test_logits = model(x_test)
        out = {
            "loss": F.cross_entropy(model(x_train), y_train).item(),
            "test_loss": F.cross_entropy(test_logits, y_test).item(),
            "test_accuracy": (test_logits.argmax(1) == y_test).float().mean().item(),
        }
        model.train()
        return out

    return Task(
        name="digits",
        title=f"digits MLP 64-256-256-10, batch {batch}",
        metric="final train loss (whole train set)",
        steps=400,
        lr=1e-3,
        weight_decay=1e-2,
        betas=(0.9, 0.999),
        build_model=build_model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        data={"train": n_train, "test": len(y) - n_train, "features": "pixels / 16"},
    )


# [note: corpus] Modules every CPython 3 ships as source, concatenated in this
# order and cut at 400 KB: the same text on any machine with the same Python
# version (its sha256 goes into the JSON). Non-ASCII bytes become '?' so the
# vocabulary is 128 symbols (which keeps the embedding and output matrices at
# multiples of every library's block size).
CORPUS_MODULES = (
    "argparse.py",
    "inspect.py",
    "typing.py",
    "difflib.py",
    "textwrap.py",
    "functools.py",
    "dataclasses.py",
    "subprocess.py",
)
CORPUS_BYTES = 400_000


def load_corpus() -> tuple[bytes, list[str]]:
    stdlib = sysconfig.get_paths()["stdlib"]
    text, used = b"", []
    for name in CORPUS_MODULES:
        path = os.path.join(stdlib, name)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            text += f.read()
        used.append(name)
        if len(text) >= CORPUS_BYTES:
            break
    if len(text) < CORPUS_BYTES:
        raise RuntimeError(
            f"the stdlib sources under {stdlib} give only {len(text)} bytes of {CORPUS_MODULES}"
        )
    return bytes(b if b < 128 else ord("?") for b in text[:CORPUS_BYTES]), used


class CharTransformer(nn.Module):
    """A pre-norm causal transformer from torch.nn's encoder layers."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        # Built one by one (nn.TransformerEncoder deep-copies one layer, so all
        # would start from the same weights).
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        mask = nn.Transformer.generate_square_subsequent_mask(context)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tok(idx) + self.pos.weight[:t]
        for block in self.blocks:
            h = block(h, src_mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


def charlm_task() -> Task:
    corpus, modules = load_corpus()
    data = torch.tensor(list(corpus), dtype=torch.int64)
    n_train = int(0.9 * len(data))
    train, val = data[:n_train], data[n_train:]
    context, batch, vocab = 64, 32, 128
    # The held-out set: every non-overlapping window of the last 10%.
    windows = val[: (len(val) // (context + 1)) * (context + 1)].view(-1, context + 1)

    def build_model() -> nn.Module:
        return CharTransformer(vocab, d=128, heads=4, layers=2, context=context)

    def batches(generator: torch.Generator):
        offsets = torch.arange(context + 1)
        while True:
            starts = torch.randint(0, n_train - context - 1, (batch,), generator=generator)
            chunk = train[starts[:, None] + offsets]
            yield chunk[:, :-1], chunk[:, 1:]

    def loss(model, xb, yb):
        return F.cross_entropy(model(xb).reshape(-1, vocab), yb.reshape(-1))

    @torch.no_grad()
    def evaluate(model) -> dict:
        model.eval()
        total = 0.0
        for part in windows.split(128):
            logits = model(part[:, :-1])
            total += F.cross_entropy(
                logits.reshape(-1, vocab), part[:, 1:].reshape(-1), reduction="sum"
            ).item()
        model.train()
        return {"loss": total / (windows.shape[0] * context)}

    return Task(
        name="charlm",
        title=f"char transformer 2 x d128, 4 heads, context {context}, batch {batch}",
        metric="final validation loss (nats/char)",
        steps=300,
        lr=3e-3,
        weight_decay=0.1,
        betas=(0.9, 0.95),
        build_model=build_model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        data={
            "corpus": "Python stdlib source: " + ", ".join(modules),
            "corpus_bytes": len(corpus),
            "corpus_sha256": hashlib.sha256(corpus).hexdigest(),
            "train_chars": n_train,
            "val_windows": windows.shape[0],
        },
    )


TASKS = {"digits": digits_task, "charlm": charlm_task}

# ---------------------------------------------------------------------------
# Optimizers: key -> (display name, module, attribute)

OPTIMIZERS = {
    "torch": ("torch.optim.AdamW (fp32)", "torch.optim", "AdamW"),
    "fused": ("fusedoptim.AdamW", "fusedoptim", "AdamW"),
    "fused8": ("fusedoptim.AdamW8bit", "fusedoptim", "AdamW8bit"),
    "ao8": ("torchao AdamW8bit", "torchao.optim", "AdamW8bit"),
    "bnb8": ("bitsandbytes AdamW8bit", "bitsandbytes.optim", "AdamW8bit"),
    "aofp8": ("torchao AdamWFp8", "torchao.optim", "AdamWFp8"),
    "ao4": ("torchao AdamW4bit", "torchao.optim", "AdamW4bit"),
}
REFERENCE, OURS = "torch", "fused8"
EIGHT_BIT_PEERS = ("ao8", "bnb8")


def load_optimizer(key: str) -> tuple[type | None, str]:
    """(the class, "") or (None, why it cannot run here)."""
    _, module, attr = OPTIMIZERS[key]
    try:
        return getattr(importlib.import_module(module), attr), ""
    except Exception as e:  # an optional library missing or broken: skip it
        return None, f"{module}.{attr} unavailable: {type(e).__name__}: {e}"


# ---------------------------------------------------------------------------
# Training


def train(task: Task, optimizer_cls: type, seed: int, steps: int, capture=None) -> dict:
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = optimizer_cls(
        model.parameters(),
        lr=task.lr,
        betas=task.betas,
        eps=EPS,
        weight_decay=task.weight_decay,
    )
    batches = task.batches(torch.Generator().manual_seed(seed))
    curve, diverged_at = [], None
    started = time.perf_counter()
    for step in range(1, steps + 1):
        xb, yb = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(model, xb, yb)
        if not torch.isfinite(loss):
            diverged_at = step
            break
        loss.backward()
        optimizer.step()
        if step % 10 == 0 or step == 1:
            curve.append([step, loss.item()])
        if capture is not None:
            capture(step, model, optimizer)
    wall = time.perf_counter() - started
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    metrics = task.evaluate(model) if diverged_at is None else {"loss": math.nan}
    if diverged_at is None and not (finite and math.isfinite(metrics["loss"])):
        diverged_at = steps  # non-finite weights or final loss after the last step
    return {
        "seed": seed,
        **metrics,
        "diverged_at_step": diverged_at,
        "wall_s": wall,
        "minibatch_loss_curve": curve,
    }


def moment_capture(steps: int, store: dict) -> Callable:
    """Saves exp_avg/exp_avg_sq of params of >= MIN_8BIT_SIZE elements at
    CAPTURE_STEP and at the last step into store[step] = (list of (m, v), bias corrections)."""
    wanted = {min(CAPTURE_STEP, steps), steps}

    def capture(step: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if step not in wanted:
            return
        beta1, beta2 = optimizer.param_groups[0]["betas"]
        pairs = []
        for p in model.parameters():
            if p.numel() >= MIN_8BIT_SIZE:
                state = optimizer.state[p]
                pairs.append((state["exp_avg"].clone(), state["exp_avg_sq"].clone()))
        store[step] = {"pairs": pairs, "bc1": 1 - beta1**step, "bc2": 1 - beta2**step}

    return capture


def summarize(runs: list[dict]) -> dict:
    losses = [r["loss"] for r in runs]
    out = {"runs": runs, "mean_loss": statistics.fmean(losses)}
    if "test_accuracy" in runs[0]:
        out["mean_test_accuracy"] = statistics.fmean(r.get("test_accuracy", math.nan) for r in runs)
    out["diverged_seeds"] = [r["seed"] for r in runs if r["diverged_at_step"] is not None]
    return out


def compare(results: dict) -> None:
    """Adds the relative difference of each mean and seed loss vs the fp32 reference."""
    ref = results.get(REFERENCE)
    if not ref or "runs" not in ref:
        return
    ref_by_seed = {r["seed"]: r["loss"] for r in ref["runs"]}
    for entry in results.values():
        if "runs" not in entry:
            continue
        entry["rel_vs_fp32"] = entry["mean_loss"] / ref["mean_loss"] - 1
        entry["seed_rel_vs_fp32"] = [
            r["loss"] / ref_by_seed[r["seed"]] - 1
            for r in entry["runs"]
            if r["seed"] in ref_by_seed
        ]


def verdict(results: dict) -> dict:
    """Issue 14's targets, as measured (None where a side did not run)."""
    ours, ref = results.get(OURS, {}), results.get(REFERENCE, {})
    if "runs" not in ours or "runs" not in ref:
        return {}
    out = {
        "within_2pct_of_fp32": abs(ours["rel_vs_fp32"]) <= 0.02 and not ours["diverged_seeds"],
        "rel_vs_fp32": ours["rel_vs_fp32"],
    }
    for key in EIGHT_BIT_PEERS:
        peer = results.get(key, {})
        out[f"no_worse_than_{key}"] = (
            ours["mean_loss"] <= peer["mean_loss"] or math.isnan(peer["mean_loss"])
            if "runs" in peer
            else None
        )
    return out


# ---------------------------------------------------------------------------
# Round trip of each 8-bit map on real moments


def roundtrip_maps() -> tuple[dict[str, Callable], list[str]]:
    """name -> decode(encode(x)) for kind "exp_avg" / "exp_avg_sq", and skip messages."""
    maps: dict[str, Callable] = {}
    skipped: list[str] = []

    def fused(kind: str, x: torch.Tensor) -> torch.Tensor:
        block = _state_precision.DEFAULT_BLOCK_SIZE
        codes, absmax = _state_precision.quantize_tensor(kind, x, x, block)
        return _state_precision.dequantize_tensor(kind, codes, absmax, block)

    maps["fusedoptim (fp16-like codes; v as sqrt)"] = fused

    try:
        from torchao.optim.subclass_4bit import OptimState4bit
        from torchao.optim.subclass_8bit import OptimState8bit
        from torchao.optim.subclass_fp8 import OptimStateFp8
    except Exception as e:
        skipped.append(f"torchao maps: {type(e).__name__}: {e}")
    else:
        # The optimizers' own path: a zero state subclass, copy_ (quantizes), dequantize.
        def through(zeros: Callable) -> Callable:
            def roundtrip(kind: str, x: torch.Tensor) -> torch.Tensor:
                state = zeros(kind == "exp_avg", x)
                state.copy_(x)
                return state.dequantize()

            return roundtrip

        maps["torchao 8-bit (dynamic map)"] = through(
            lambda signed, x: OptimState8bit.zeros(x.shape, signed, 256)
        )
        maps["torchao fp8 (e4m3)"] = through(lambda signed, x: OptimStateFp8.zeros(x.shape, 256))
        maps["torchao 4-bit"] = through(
            lambda signed, x: OptimState4bit.zeros(x.shape, signed, 128)
        )

    try:
        import bitsandbytes.functional as bnbf
    except Exception as e:
        skipped.append(f"bitsandbytes map: {type(e).__name__}: {e}")
    else:
        codes = {"exp_avg": bnbf.create_dynamic_map(signed=True)}
        codes["exp_avg_sq"] = bnbf.create_dynamic_map(signed=False)

        def bnb(kind: str, x: torch.Tensor) -> torch.Tensor:
            q, state = bnbf.quantize_blockwise(x, code=codes[kind], blocksize=256)
            return bnbf.dequantize_blockwise(q, state)

        maps["bitsandbytes 8-bit (dynamic map)"] = bnb
    return maps, skipped


def quantile(x: torch.Tensor, q: float) -> float:
    return torch.quantile(x.double(), q).item() if x.numel() else math.nan


def value_stats(exact: torch.Tensor, decoded: torch.Tensor) -> dict:
    nonzero = exact != 0
    rel = ((decoded - exact).abs() / exact.abs())[nonzero]
    return {
        "nonzero": int(nonzero.sum()),
        "pct_nonzero_to_zero": 100.0 * float((decoded[nonzero] == 0).double().mean()),
        "median_rel_err": quantile(rel, 0.5),
        "p99_rel_err": quantile(rel, 0.99),
    }


def roundtrip_stats(snapshot: dict, roundtrip: Callable) -> dict:
    """Pooled over the snapshot's tensors (each encoded on its own, as in training)."""
    cat = {k: [] for k in ("m", "v", "m_dec", "v_dec")}
    for m, v in snapshot["pairs"]:
        cat["m"].append(m.flatten())
        cat["v"].append(v.flatten())
        cat["m_dec"].append(roundtrip("exp_avg", m).float().flatten())
        cat["v_dec"].append(roundtrip("exp_avg_sq", v).float().flatten())
    m, v, m_dec, v_dec = (torch.cat(cat[k]) for k in ("m", "v", "m_dec", "v_dec"))
    # [note: step blow-up] Adam's step of an element is m / bc1 / (sqrt(v / bc2) + eps);
    # with the decoded second moment the denominator changes by d_exact / d_decoded,
    # which is how many times larger (or smaller) that step becomes. Only elements
    # with m != 0 take a step.
    bc1, bc2 = snapshot["bc1"], snapshot["bc2"]
    d_exact = (v.double() / bc2).sqrt() + EPS
    d_dec = (v_dec.double().clamp(min=0) / bc2).sqrt() + EPS
    moving = m != 0
    growth = (d_exact / d_dec)[moving]
    step_exact = (m.double().abs() / bc1 / d_exact)[moving]
    step_dec = (m_dec.double().abs() / bc1 / d_dec)[moving]
    return {
        "elements": m.numel(),
        "first_moment": value_stats(m, m_dec),
        "second_moment": {
            **value_stats(v, v_dec),
            "max_step_growth": growth.max().item() if growth.numel() else math.nan,
            "p99_step_growth": quantile(growth, 0.99),
            "max_step_exact": step_exact.max().item() if step_exact.numel() else math.nan,
            "max_step_decoded_m_and_v": step_dec.max().item() if step_dec.numel() else math.nan,
        },
    }


# ---------------------------------------------------------------------------
# Output


def _num(x: float, digits: int = 5) -> str:
    """Significant digits: digits' losses are a few hundredths, charlm's about 2."""
    return "nan" if x is None or not math.isfinite(x) else f"{x:#.{digits}g}"


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:+.2f}%"


def loss_table(task: Task, results: dict) -> str:
    header = ["optimizer", "mean loss", "vs fp32", "per seed", "per seed vs fp32"]
    digits_task = task.name == "digits"
    if digits_task:
        header.append("test acc")
    header += ["s/run", "note"]
    rows = []
    for key, entry in results.items():
        name = OPTIMIZERS[key][0]
        if "runs" not in entry:
            rows.append([name, "-", "-", "-", "-"] + (["-"] if digits_task else []))
            rows[-1] += ["-", entry.get("skipped", "")]
            continue
        runs = entry["runs"]
        row = [
            name,
            _num(entry["mean_loss"]),
            "-" if key == REFERENCE else _pct(entry.get("rel_vs_fp32")),
            " ".join(_num(r["loss"]) for r in runs),
            "-" if key == REFERENCE else " ".join(_pct(x) for x in entry["seed_rel_vs_fp32"]),
        ]
        if digits_task:
            row.append(f"{entry['mean_test_accuracy']:.3f}")
        walls = [r["wall_s"] for r in runs]
        row.append(" ".join(f"{w:.1f}" for w in walls))
        notes = [f"seed {r['seed']} diverged at step {r['diverged_at_step']}" for r in runs]
        row.append("; ".join(n for n, r in zip(notes, runs) if r["diverged_at_step"] is not None))
        rows.append(row)
    return report.table(header, rows)


def roundtrip_table(stats: dict) -> str:
    header = [
        "map",
        "m: nonzero->0",
        "m: med rel err",
        "m: p99 rel err",
        "v: nonzero->0",
        "v: med rel err",
        "v: p99 rel err",
        "step growth max",
        "p99",
        "max step exact -> decoded",
    ]
    rows = []
    for name, s in stats.items():
        m, v = s["first_moment"], s["second_moment"]
        rows.append(
            [
                name,
                f"{m['pct_nonzero_to_zero']:.2f}%",
                f"{m['median_rel_err']:.2e}",
                f"{m['p99_rel_err']:.2e}",
                f"{v['pct_nonzero_to_zero']:.2f}%",
                f"{v['median_rel_err']:.2e}",
                f"{v['p99_rel_err']:.2e}",
                f"{v['max_step_growth']:.3g}x",
                f"{v['p99_step_growth']:.3g}x",
                f"{v['max_step_exact']:.3g} -> {v['max_step_decoded_m_and_v']:.3g}",
            ]
        )
    return report.table(header, rows)


def json_safe(x):
    """NaN/inf -> None, so the file is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def library_versions() -> dict:
    versions = {}
    for module in ("torchao", "bitsandbytes", "sklearn", "numpy"):
        try:
            versions[module] = importlib.import_module(module).__version__
        except Exception as e:
            versions[module] = f"not available ({type(e).__name__})"
    return versions


# ---------------------------------------------------------------------------


def parse_list(text: str, allowed) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in allowed]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma list of " + ",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2", help="comma list of ints (default 0,1,2)")
    parser.add_argument(
        "--steps", type=int, help="steps for every task (default: digits 400, charlm 300)"
    )
    parser.add_argument(
        "--optimizers", default=",".join(OPTIMIZERS), help="comma list of " + ",".join(OPTIMIZERS)
    )
    parser.add_argument("--threads", type=int, default=2, help="torch (and fusedoptim) threads")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    tasks = parse_list(args.tasks, TASKS)
    keys = parse_list(args.optimizers, OPTIMIZERS)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds or (args.steps is not None and args.steps < 1):
        raise SystemExit("need at least one seed and --steps >= 1")
    torch.set_num_threads(args.threads)

    env = environment.describe()
    env["libraries"] = library_versions()
    print(environment.summary_line(env))
    print("libraries: " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()), flush=True)

    classes = {}
    for key in keys:
        classes[key], why = load_optimizer(key)
        if why:
            print(f"skipping {OPTIMIZERS[key][0]}: {why}")

    out = {"schema": SCHEMA, "environment": env, "seeds": seeds, "tasks": {}, "roundtrip": {}}
    for task_name in tasks:
        task = TASKS[task_name]()
        steps = args.steps or task.steps
        print(
            f"\n== {task.name}: {task.title}, {steps} steps, lr {task.lr}, betas {task.betas}, "
            f"eps {EPS}, weight_decay {task.weight_decay}; {task.metric}",
            flush=True,
        )
        results: dict[str, dict] = {}
        snapshots: dict[int, dict] = {}
        for key in keys:
            if classes[key] is None:
                results[key] = {"skipped": load_optimizer(key)[1]}
                continue
            runs = []
            for i, seed in enumerate(seeds):
                capture = moment_capture(steps, snapshots) if key == REFERENCE and i == 0 else None
                try:
                    run = train(task, classes[key], seed, steps, capture)
                except Exception as e:  # e.g. a reference optimizer that cannot run on CPU
                    message = f"failed on seed {seed}: {type(e).__name__}: {str(e)[:200]}"
                    print(f"  {OPTIMIZERS[key][0]}: {message}", flush=True)
                    results[key] = {"skipped": message}
                    break
                runs.append(run)
                extra = f", test acc {run['test_accuracy']:.3f}" if "test_accuracy" in run else ""
                div = run["diverged_at_step"]
                print(
                    f"  {OPTIMIZERS[key][0]:26s} seed {seed}: loss {_num(run['loss'])}{extra}"
                    f"{f' DIVERGED at step {div}' if div is not None else ''} "
                    f"({run['wall_s']:.1f} s)",
                    flush=True,
                )
            else:
                results[key] = summarize(runs)
        compare(results)
        print()
        print(loss_table(task, results))
        task_verdict = verdict(results)
        if task_verdict:
            peers = ", ".join(
                f"no worse than {OPTIMIZERS[k][0]}: {task_verdict[f'no_worse_than_{k}']}"
                for k in EIGHT_BIT_PEERS
            )
            print(
                f"fusedoptim.AdamW8bit mean vs fp32 {_pct(task_verdict['rel_vs_fp32'])}: "
                f"within 2%: {task_verdict['within_2pct_of_fp32']}; {peers}"
            )
        out["tasks"][task.name] = {
            "title": task.title,
            "metric": task.metric,
            "steps": steps,
            "hyperparameters": {
                "lr": task.lr,
                "betas": task.betas,
                "eps": EPS,
                "weight_decay": task.weight_decay,
            },
            "data": task.data,
            "results": {OPTIMIZERS[k][0]: v for k, v in results.items()},
            "verdict": task_verdict,
        }

        if not snapshots:
            print("round trip skipped: it needs the torch.optim.AdamW (fp32) run")
            continue
        maps, skipped = roundtrip_maps()
        for message in skipped:
            print(f"skipping {message}")
        out["roundtrip"][task.name] = {}
        for step, snapshot in sorted(snapshots.items()):
            stats = {name: roundtrip_stats(snapshot, fn) for name, fn in maps.items()}
            count = sum(m.numel() for m, _ in snapshot["pairs"])
            print(
                f"\nround trip of fp32 AdamW's moments, {task.name} seed {seeds[0]} step {step} "
                f"({len(snapshot['pairs'])} tensors, {count:,} elements; step growth = "
                "d_exact / d_decoded, see [note: step blow-up]):"
            )
            print(roundtrip_table(stats))
            out["roundtrip"][task.name][str(step)] = stats

    if args.json:
        with open(args.json, "w") as f:
            json.dump(json_safe(out), f, indent=1, allow_nan=False)
            f.write("\n")
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
