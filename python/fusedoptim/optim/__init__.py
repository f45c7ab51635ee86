"""Drop-in replacements for torch.optim.SGD, Adam and AdamW with fused steps."""

from fusedoptim.optim.adam import Adam, AdamW
from fusedoptim.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW"]
