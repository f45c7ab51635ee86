"""The marks of the test modules that need CUDA: skipped without a device,
and with a device but a CPU-only build too, unless FUSEDOPTIM_REQUIRE_CUDA=1
(set by benchmarks/gpu_check.sh), which turns a missing CUDA build into a
failure. Used as ``pytestmark = CUDA_MODULE``."""

from __future__ import annotations

import os

import pytest
import torch

from fusedoptim import _C

_CUDA_BUILT = bool(_C.build_info()["cuda_compiled"])
_REQUIRE_CUDA = os.environ.get("FUSEDOPTIM_REQUIRE_CUDA") == "1"

CUDA_MODULE = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(
        not _CUDA_BUILT and not _REQUIRE_CUDA, reason="fusedoptim was built without CUDA"
    ),
]
