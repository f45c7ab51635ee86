"""Streaming feature scaling: scikit-learn's StandardScaler and MinMaxScaler for data
that comes in batches (``partial_fit`` over a DataLoader), on numpy arrays or torch
tensors (CPU or CUDA), with one fused, multithreaded C++ pass for the statistics and one
for the transform; ``sync()`` merges the statistics of torch.distributed processes and
``state_dict()`` checkpoints them."""

from fusedoptim.preprocessing._inputs import NotFittedError
from fusedoptim.preprocessing._minmax import MinMaxScaler
from fusedoptim.preprocessing._standard import StandardScaler

__all__ = ["MinMaxScaler", "NotFittedError", "StandardScaler"]
