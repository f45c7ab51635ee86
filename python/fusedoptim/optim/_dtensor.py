"""DTensor params (FSDP2's ``fully_shard``, tensor parallelism): update the local shard.

A DTensor's ``data_ptr()`` is 0 and its shape is the global one; its elements
on this rank live in its local tensor. The kernels and the pre-step checks
therefore see ``local_tensor(x)`` for the param, the grad and every state
tensor, while the optimizer state itself stays a DTensor: ``zeros_like`` on a
DTensor param gives a DTensor with the param's placements and a local tensor
of the local shard's shape, which is what torch.optim keeps and what
``torch.distributed.checkpoint`` (``get_optimizer_state_dict`` /
``set_optimizer_state_dict``) saves, loads and reshards.
"""

from __future__ import annotations

import sys
from typing import Any


def local_tensor(t: Any) -> Any:
    """``t``'s local shard if it is a DTensor, else ``t`` itself (tensors, numpy arrays)."""
    dtensor_class = _loaded_dtensor_class()
    if dtensor_class is not None and isinstance(t, dtensor_class):
        # The attribute, not to_local(): no autograd node and no dispatch, and
        # it is the very storage the DTensor (and FSDP2's all-gather) reads.
        return t._local_tensor
    return t


def _loaded_dtensor_class() -> type | None:
    # Importing torch.distributed.tensor costs ~0.5 s and is not needed at
    # `import fusedoptim`: no DTensor can exist before that module is loaded.
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None) if module is not None else None
