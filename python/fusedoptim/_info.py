"""fusedoptim.info(): what this installation was built with and what it finds."""

from __future__ import annotations

from typing import Any

import torch

from fusedoptim import _backend


def info() -> dict[str, Any]:
    """Version, CPU kernel builds (compiled, detected, active), threads and CUDA status.

    Never fails on a machine without a GPU or a CUDA driver.
    """
    built = _backend.build_info()
    return {
        **built,
        "num_threads": _backend.resolve_num_threads(),
        "torch_version": torch.__version__,
        "torch_cuda_available": torch.cuda.is_available(),
    }
