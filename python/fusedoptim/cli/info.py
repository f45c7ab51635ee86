"""Show what this installation of fusedoptim was built with and what it finds:
version, CPU kernel builds (compiled, detected, active), threads, CUDA."""

from __future__ import annotations

import argparse
import json
import os

HELP = "version, CPU kernel builds, threads, CUDA status"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print fusedoptim.info() as JSON")


def format_info(info: dict) -> str:
    forced = os.environ.get("FUSEDOPTIM_ISA")
    active = info["isa_active"] + (f" (FUSEDOPTIM_ISA={forced})" if forced else "")
    cuda = "compiled in" if info["cuda_compiled"] else "not compiled in this build"
    lines = [
        f"fusedoptim {info['version']}",
        f"  CPU kernels compiled: {', '.join(info['isas_compiled'])}",
        f"  CPU detected:         {info['isa_detected']}",
        f"  CPU kernels active:   {active}",
        f"  threads:              {info['num_threads']} "
        f"(hardware threads: {info['hardware_threads']}; run by {info['parallel_backend']})",
        f"  CUDA:                 {cuda}",
        f"  torch:                {info['torch_version']} "
        f"(CUDA available: {'yes' if info['torch_cuda_available'] else 'no'})",
        f"  compiler:             {info['compiler']}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import fusedoptim

    data = fusedoptim.info()
    print(json.dumps(data, indent=2) if args.json else format_info(data))
    return 0
