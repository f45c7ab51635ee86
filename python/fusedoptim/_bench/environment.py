"""What a run was measured on: machine, load, versions, the kernel build that ran."""

from __future__ import annotations

import datetime
import os
import platform
import sys

import torch

import fusedoptim


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def describe() -> dict:
    info = fusedoptim.info()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "fusedoptim": info["version"],
        "isas_compiled": info["isas_compiled"],
        "isa_detected": info["isa_detected"],
        "isa_active": info["isa_active"],
        "parallel_backend": info["parallel_backend"],
        "fusedoptim_threads": info["num_threads"],
        "cuda_compiled": info["cuda_compiled"],
        "load_average_start": load_average(),
    }


def summary_line(env: dict) -> str:
    load = env.get("load_average_start")
    load_text = "n/a" if load is None else " ".join(f"{x:.2f}" for x in load)
    return (
        f"{env['cpu']}, {env['cpu_count']} CPUs | fusedoptim {env['fusedoptim']} "
        f"(kernels: {env['isa_active']}, {env['fusedoptim_threads']} threads on "
        f"{env.get('parallel_backend', 'pool')}) | "
        f"torch {env['torch']} ({env['torch_threads']} threads) | load average {load_text}"
    )
