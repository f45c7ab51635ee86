"""fusedoptim vs torch.optim (for-loop, foreach, fused), a plain fused C loop and
DeepSpeed's CPUAdam when installed: SGD, SGD momentum, Adam, AdamW in fp32 and
bf16 over one 16M and one 64M tensor, GPT-2 small and ResNet-50 shapes and 500
tensors of 1,000, with the in-place update bandwidth measured in the same loop;
and the 8-bit SGD8bit (momentum), Adam8bit, AdamW8bit against fusedoptim's
float-state optimizers, torch.optim and bitsandbytes' and torchao's 8-bit
optimizers when installed (see also bench_memory.py).

    PYTHONPATH=python python benchmarks/bench_optim.py            # the full suite
    PYTHONPATH=python python benchmarks/bench_optim.py --quick    # fusedoptim bench's default

Any option of `fusedoptim bench` works here too (--workloads, --optimizers,
--dtypes, --threads, --isa, --rounds, --json, --plot ...). Results go to
bench_results/bench_optim.json (and .png with matplotlib) unless --json/--plot
say otherwise. The engine is fusedoptim._bench, so the installed command and
this script measure the same thing.
"""

from __future__ import annotations

import os
import sys

from fusedoptim._bench.suite import Settings, run_case, run_suite  # noqa: F401  (importable API)
from fusedoptim.cli import main as cli_main

OUT_DIR = "bench_results"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in args
    args = [a for a in args if a != "--quick"]
    defaults = [] if quick else ["--full"]
    if "--json" not in args:
        os.makedirs(OUT_DIR, exist_ok=True)
        defaults += ["--json", os.path.join(OUT_DIR, "bench_optim.json")]
    if "--plot" not in args:
        os.makedirs(OUT_DIR, exist_ok=True)
        defaults += ["--plot", os.path.join(OUT_DIR, "bench_optim.png")]
    return cli_main(["bench", *defaults, *args])


if __name__ == "__main__":
    sys.exit(main())
