"""``python -m fusedoptim`` and the ``fusedoptim`` console script (see fusedoptim.cli)."""

import sys

from fusedoptim.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
