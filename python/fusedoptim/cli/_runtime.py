"""Thread count and kernel build for one command, put back afterwards, so that
``fusedoptim.cli.main([...])`` called from Python leaves the process as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def threads_and_isa(threads: int | None = None, isa: str | None = None) -> Iterator[None]:
    """torch's intra-op threads (which fusedoptim follows) and the active CPU kernel
    build for the duration of the block. Raises ValueError for a bad value."""
    import torch

    import fusedoptim
    from fusedoptim import _backend

    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_isa = fusedoptim.info()["isa_active"]
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if isa is not None:
            _backend.set_isa(isa)
        yield
    finally:
        torch.set_num_threads(old_threads)
        _backend.set_isa(old_isa)
