"""Half-precision training without lost updates: speed and quality of
bf16_stochastic_round and master_weights (README, "Half precision").

Speed: one AdamW step over bf16 params (default 16M elements, bf16 grads),
timed interleaved (fusedoptim._bench.timing) for
- fusedoptim AdamW, bf16 params rounded to nearest (the plain bf16 step),
- the same with bf16_stochastic_round=True,
- the same with master_weights=True (fp32 master, fp32 moments, bf16 param
  written in the same pass),
- fusedoptim AdamW on fp32 params followed by a ``torch._foreach_copy_`` into
  bf16 copies (master weights done as two passes, as without the option),
- torch's fused AdamW on the bf16 params (rounds to nearest),
- torchao's ``_AdamW(bf16_stochastic_round=True)`` when torchao imports
  (an optional benchmark extra; its first call compiles, out of the timing),
- the bandwidth probe of master weights' bytes: master_weights moves 28
  bytes per element (master, m, v read and written in fp32, the bf16 grad
  read, the bf16 param written), as many as the probe's three fp32 arrays
  updated in place from a fourth; "% limit" is the probe's time over the
  step's.

Quality: a digits MLP (64-128-10, AdamW lr 1e-4, 400 steps of batch 64),
its forward and backward in bf16 for the bf16 runs, final cross-entropy on
the whole set in fp32, and test accuracy on a held-out fifth; per seed.

    PYTHONPATH=python python benchmarks/bench_half_precision.py [--elements N]
        [--rounds R] [--seeds 0,1,2] [--skip-quality] [--skip-speed] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

import fusedoptim
from fusedoptim import _backend
from fusedoptim._bench import environment
from fusedoptim._bench.timing import interleaved

LR = 1e-3


def _bf16_params(elements: int, seed: int = 0) -> list[torch.Tensor]:
    """GPT-like shapes totalling ``elements``: a few large matrices and small
    vectors, values in [-1, 1], bf16 grads set once."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [elements // 4] * 3
    sizes.append(elements - sum(sizes) - 64 * 768)
    sizes += [768] * 64
    params = []
    for n in sizes:
        p = torch.empty(n, dtype=torch.bfloat16).uniform_(-1, 1, generator=gen).requires_grad_()
        p.grad = torch.empty(n, dtype=torch.bfloat16).uniform_(-1, 1, generator=gen)
        params.append(p)
    return params


def _torchao_sr(params):
    try:
        from torchao.optim import _AdamW
    except Exception as error:  # an optional extra: any import failure skips it
        return None, f"torchao not importable ({type(error).__name__})"
    return _AdamW(params, lr=LR, bf16_stochastic_round=True).step, None


def speed(elements: int, rounds: int, max_seconds: float) -> dict:
    steps: dict = {}
    skipped: dict = {}

    def fused(**options):
        params = _bf16_params(elements)
        return fusedoptim.AdamW(params, lr=LR, **options).step

    steps["fusedoptim bf16, to nearest"] = fused()
    steps["fusedoptim bf16, stochastic rounding"] = fused(bf16_stochastic_round=True, seed=0)
    steps["fusedoptim bf16, master_weights"] = fused(master_weights=True)

    masters = [p.detach().float().requires_grad_() for p in _bf16_params(elements)]
    for m in masters:
        m.grad = torch.empty_like(m).uniform_(-1, 1)
    copies = [m.detach().bfloat16() for m in masters]
    fp32_step = fusedoptim.AdamW(masters, lr=LR).step

    def two_passes():
        fp32_step()
        torch._foreach_copy_(copies, [m.detach() for m in masters])

    steps["fusedoptim fp32 + _foreach_copy_ to bf16"] = two_passes
    torch_params = _bf16_params(elements)
    steps["torch fused (bf16, to nearest)"] = torch.optim.AdamW(
        torch_params, lr=LR, fused=True
    ).step
    ao_step, why = _torchao_sr(_bf16_params(elements))
    if ao_step is None:
        skipped["torchao _AdamW(bf16_stochastic_round=True)"] = why
    else:
        steps["torchao _AdamW(bf16_stochastic_round=True)"] = ao_step

    n = elements
    arrays = [torch.rand(n) for _ in range(3)]
    source = torch.rand(n)
    probe = _backend.bandwidth_probe(arrays, source, 0.5)
    steps["bandwidth probe (28 B/element)"] = lambda keep=(arrays, source): probe()

    timings = interleaved(steps, warmup=2, rounds=rounds, min_rounds=5, max_seconds=max_seconds)
    return {
        "elements": elements,
        "median_ms": {k: t.median * 1e3 for k, t in timings.items()},
        "min_ms": {k: t.min * 1e3 for k, t in timings.items()},
        "first_ms": {k: t.first * 1e3 for k, t in timings.items()},
        "rounds": {k: len(t.times) for k, t in timings.items()},
        "skipped": skipped,
    }


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(123))
    test = order[: len(x) // 5]
    train = order[len(x) // 5 :]
    return x[train], y[train], x[test], y[test]


MODES = {
    "fp32 AdamW": (torch.float32, {}),
    "bf16 AdamW, to nearest": (torch.bfloat16, {}),
    "bf16 AdamW, bf16_stochastic_round": (torch.bfloat16, {"bf16_stochastic_round": True}),
    "bf16 AdamW, master_weights": (torch.bfloat16, {"master_weights": True}),
    "torchao _AdamW, bf16_stochastic_round": (torch.bfloat16, "torchao"),
}


def train(mode: str, seed: int, data, steps: int = 400, lr: float = 1e-4):
    x, y, x_test, y_test = data
    dtype, options = MODES[mode]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    model.to(dtype)
    if options == "torchao":
        from torchao.optim import _AdamW

        opt = _AdamW(model.parameters(), lr=lr, weight_decay=0.0, bf16_stochastic_round=True)
    else:
        opt = fusedoptim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, seed=seed, **options)
    for _ in range(steps):
        index = torch.randint(0, len(x), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[index].to(dtype)).float(), y[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model.float()
        final = torch.nn.functional.cross_entropy(model(x), y).item()
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return final, accuracy


def quality(seeds: list[int]) -> dict:
    data = _digits()
    results: dict = {}
    for mode in MODES:
        runs = []
        for seed in seeds:
            try:
                runs.append(train(mode, seed, data))
            except ImportError as error:
                results[mode] = {"skipped": f"{type(error).__name__}: {error}"}
                break
        else:
            results[mode] = {"loss": [r[0] for r in runs], "accuracy": [r[1] for r in runs]}
    return results


def print_speed(result: dict) -> None:
    med = result["median_ms"]
    plain = med["fusedoptim bf16, to nearest"]
    probe = med["bandwidth probe (28 B/element)"]
    print(f"\nAdamW step, {result['elements'] / 2**20:.0f}M bf16 params (median of rounds, ms)")
    print(f"{'implementation':46s} {'median':>9s} {'min':>9s} {'vs plain bf16':>14s}")
    for name, ms in med.items():
        print(f"{name:46s} {ms:9.2f} {result['min_ms'][name]:9.2f} {ms / plain:13.2f}x")
    for name, why in result["skipped"].items():
        print(f"{name:46s} not timed: {why}")
    sr = med["fusedoptim bf16, stochastic rounding"]
    master = med["fusedoptim bf16, master_weights"]
    print(f"stochastic rounding over plain bf16: {100 * (sr / plain - 1):+.1f}%")
    ao = med.get("torchao _AdamW(bf16_stochastic_round=True)")
    if ao is not None:
        print(f"torchao's stochastic rounding / ours: {ao / sr:.1f}x")
    limit = 100 * probe / master
    print(f"master_weights: {limit:.0f}% of the bandwidth limit for its 28 B/element")
    two = med["fusedoptim fp32 + _foreach_copy_ to bf16"]
    print(f"master weights as two passes / fused: {two / master:.2f}x")


def print_quality(results: dict, seeds: list[int]) -> None:
    print(f"\ndigits MLP, AdamW lr 1e-4, 400 steps, seeds {seeds}")
    base = statistics.mean(results["fp32 AdamW"]["loss"])
    print(f"{'run':40s} {'mean loss':>10s} {'vs fp32':>8s} {'accuracy':>9s}  per-seed loss")
    for mode, r in results.items():
        if "skipped" in r:
            print(f"{mode:40s} skipped: {r['skipped']}")
            continue
        loss = statistics.mean(r["loss"])
        accuracy = statistics.mean(r["accuracy"])
        seeds_text = " ".join(f"{v:.4f}" for v in r["loss"])
        print(f"{mode:40s} {loss:10.4f} {loss / base:7.3f}x {100 * accuracy:8.1f}%  {seeds_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", type=int, default=16 * 2**20)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    env = environment.describe()
    print(environment.summary_line(env))
    out: dict = {"environment": env}
    if not args.skip_speed:
        out["speed"] = speed(args.elements, args.rounds, args.max_seconds)
        print_speed(out["speed"])
    if not args.skip_quality:
        seeds = [int(s) for s in args.seeds.split(",")]
        out["quality"] = quality(seeds)
        print_quality(out["quality"], seeds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
