"""Time fusedoptim's optimizer step against torch.optim (for-loop, foreach, fused)
in one interleaved run, with the machine's in-place update bandwidth measured in
the same loop. The 8-bit optimizers are timed against fusedoptim's float-state
ones, torch.optim, and bitsandbytes' and torchao's 8-bit optimizers when those
are installed (--full, or an 8-bit kind named in --optimizers). The default is a
quick run (under a minute on 2 cores, one 8-bit case); --full runs every workload
and optimizer of the suite (many minutes, GBs of memory for GPT-2 shapes)."""

from __future__ import annotations

import argparse
import contextlib
import sys

HELP = "benchmark the optimizer step against torch.optim"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full",
        action="store_true",
        help="all workloads (16M, 64M, gpt2, 500x1000, resnet50) and optimizers, more rounds",
    )
    parser.add_argument(
        "--workloads",
        type=_csv,
        help="comma-separated: gpt2, resnet50 or [COUNTx]SIZE[k|M] such as 16M, 500x1000",
    )
    parser.add_argument(
        "--optimizers",
        type=_csv,
        help="comma-separated subset of sgd,sgd_momentum,adam,adamw and the 8-bit "
        "sgd_momentum8bit,adam8bit,adamw8bit (these time bitsandbytes and torchao too, "
        "when installed)",
    )
    parser.add_argument("--dtypes", type=_csv, help="comma-separated subset of fp32,bf16")
    parser.add_argument(
        "--threads", type=int, help="threads for torch and fusedoptim (default: torch's)"
    )
    parser.add_argument("--isa", help="force a lower CPU kernel build (baseline, avx2, avx512)")
    parser.add_argument("--rounds", type=int, help="timed rounds per case (at most)")
    parser.add_argument("--warmup", type=int, help="untimed steps per implementation first")
    parser.add_argument(
        "--max-seconds", type=float, help="stop a case's rounds after this long (min 3 rounds)"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG plot (needs matplotlib)")
    parser.add_argument(
        "--details",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print every implementation of every case (default: on with --full)",
    )
    parser.add_argument(
        "--training-loop",
        action="store_true",
        help="also time the step inside an MLP training loop vs alone",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def settings_from(args: argparse.Namespace):
    from fusedoptim._bench.suite import Settings

    settings = Settings.full() if args.full else Settings()
    for name in ("workloads", "optimizers", "dtypes", "rounds", "warmup", "max_seconds"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if any(getattr(args, name) is not None for name in ("workloads", "optimizers", "dtypes")):
        settings.extra_cases = ()  # the cases asked for, and only those
    if args.optimizers is not None:
        settings.eight_bit_references = True
    if settings.rounds < 1 or settings.warmup < 0:
        raise ValueError("--rounds must be >= 1 and --warmup >= 0")
    settings.min_rounds = min(settings.min_rounds, settings.rounds)
    return settings


def run(args: argparse.Namespace) -> int:
    from fusedoptim._bench import suite
    from fusedoptim.cli._runtime import threads_and_isa

    # Only the arguments are checked here: an error inside the run is a bug to see.
    runtime = contextlib.ExitStack()
    try:
        settings = settings_from(args)
        suite.cases(settings)  # validates the names before anything is allocated
        runtime.enter_context(threads_and_isa(args.threads, args.isa))
    except ValueError as error:
        print(f"fusedoptim bench: error: {error}", file=sys.stderr)
        return 2
    with runtime:
        return _run(args, settings)


def _run(args: argparse.Namespace, settings) -> int:
    from fusedoptim._bench import report, suite, training_loop

    details = args.full if args.details is None else args.details
    err = sys.stderr

    def on_case_start(index: int, total: int, title: str):
        if args.quiet:
            return None
        err.write(f"[{index + 1}/{total}] {title} ")
        err.flush()

        def progress(_message: str) -> None:
            err.write(".")
            err.flush()

        return progress

    def on_case_done(case) -> None:
        if not args.quiet:
            ours = case.implementations.get("fusedoptim")
            other = "fusedoptim float state" if case.eight_bit else "torch fused"
            fused = case.implementations.get(other)
            text = f" {ours.median_ms:.3f} ms" if ours else ""
            if ours and fused:
                text += f" ({other} {fused.median_ms:.3f} ms)"
            err.write(text + "\n")
            err.flush()
        if details:
            print(report.format_case(case) + "\n", flush=True)

    if not args.quiet:
        mode = "full" if args.full else "quick (--full for every workload)"
        print(f"fusedoptim bench, {mode}: progress here, tables at the end", file=err)
    result = suite.run_suite(settings, on_case_start, on_case_done)
    print(report.header(result))
    print(report.summary(result))
    print(report.footer(result))

    loop = None
    if args.training_loop:
        if not args.quiet:
            err.write("training loop ")
        loop = training_loop.run(
            training_loop.LoopSettings(),
            None if args.quiet else lambda _m: (err.write("."), err.flush()),
        )
        if not args.quiet:
            err.write("\n")
        print()
        print(training_loop.format_result(loop))

    if args.json:
        report.write_json(args.json, report.to_json(result, loop))
        print(f"results written to {args.json}")
    if args.plot:
        print(report.plot(result, args.plot))
    return 0
