"""fusedoptim: optimizer steps for PyTorch that cost what the memory bus allows.

Change one import (``torch.optim.AdamW`` -> ``fusedoptim.AdamW``) and the step
updates every parameter of a group in one fused call, on CPU or CUDA, with
torch.optim's results and state_dict layout.
"""

from fusedoptim import _backend, functional, metrics, penalties, preprocessing
from fusedoptim._backend import set_num_threads
from fusedoptim._info import info
from fusedoptim.early_stopping import EarlyStopping
from fusedoptim.optim import (
    SGD,
    Adam,
    Adam8bit,
    AdamW,
    AdamW8bit,
    SGD8bit,
    dequantized_state_dict,
)
from fusedoptim.penalties import clip_grad_norm_

__version__ = _backend.version()

__all__ = [
    "SGD",
    "SGD8bit",
    "Adam",
    "Adam8bit",
    "AdamW",
    "AdamW8bit",
    "dequantized_state_dict",
    "EarlyStopping",
    "clip_grad_norm_",
    "functional",
    "metrics",
    "penalties",
    "preprocessing",
    "info",
    "set_num_threads",
    "__version__",
]
