"""The optimizer step inside a training loop: an MLP's forward + backward + step
with torch's threads busy, against the same step timed alone, for fusedoptim.AdamW
and torch.optim.AdamW (fused=True and for-loop). Reports the step's share of an
iteration and how much longer the step takes in the loop than alone.

    PYTHONPATH=python python benchmarks/bench_training_loop.py [--width 2048]
        [--layers 4] [--batch 64] [--rounds 6] [--threads N] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys

import torch

from fusedoptim._bench import environment, report, training_loop


def main(argv: list[str] | None = None) -> int:
    defaults = training_loop.LoopSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("layers", "width", "batch", "rounds", "block", "warmup"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    parser.add_argument("--threads", type=int, help="torch and fusedoptim threads")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = training_loop.LoopSettings(
        **{k: getattr(args, k) for k in ("layers", "width", "batch", "rounds", "block", "warmup")}
    )
    env = environment.describe()
    print(environment.summary_line(env), flush=True)

    def progress(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    result = training_loop.run(settings, progress)
    print(training_loop.format_result(result))
    load = environment.load_average()
    print("load average at end: " + ("n/a" if load is None else " ".join(f"{x:.2f}" for x in load)))
    if args.json:
        report.write_json(args.json, {"environment": env, "training_loop": result})
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
