import pytest
import torch

import fusedoptim


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Each test starts from the default ISA and thread settings."""
    fusedoptim.set_num_threads(None)
    yield
    fusedoptim.set_num_threads(None)
    fusedoptim._backend.set_isa(fusedoptim.info()["isa_detected"])


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    from optim_reference import WORST_SEEN
    from scaler_reference import WORST_SEEN as SCALER_WORST_SEEN

    if WORST_SEEN:
        worst = ", ".join(f"{dtype}: {value:.3g}" for dtype, value in WORST_SEEN.items())
        terminalreporter.write_line(f"worst deviation from torch.optim (x scale): {worst}")
    if SCALER_WORST_SEEN:
        worst = ", ".join(f"{name}: {value:.3g}" for name, value in SCALER_WORST_SEEN.items())
        terminalreporter.write_line(f"worst relative deviation of the scalers: {worst}")
