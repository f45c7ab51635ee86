"""Drop-in replacements for torch.optim.SGD, Adam and AdamW with fused steps, and
their 8-bit-state variants (bitsandbytes' and torchao's names)."""

from fusedoptim.optim._state_precision import dequantized_state_dict
from fusedoptim.optim.adam import Adam, AdamW
from fusedoptim.optim.quantized import Adam8bit, AdamW8bit, SGD8bit
from fusedoptim.optim.sgd import SGD

__all__ = ["SGD", "SGD8bit", "Adam", "Adam8bit", "AdamW", "AdamW8bit", "dequantized_state_dict"]
