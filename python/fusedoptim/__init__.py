"""fusedoptim"""

from fusedoptim import metrics  # noqa: F401
from fusedoptim.early_stopping import EarlyStopping  # noqa: F401
