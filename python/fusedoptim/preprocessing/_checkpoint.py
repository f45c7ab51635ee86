"""``state_dict()`` / ``load_state_dict()``: a scaler's running statistics as plain
tensors, numbers and strings, which ``torch.save`` writes and ``torch.load(...,
weights_only=True)`` reads. The constructor arguments are not part of it."""

from __future__ import annotations

import torch

from fusedoptim.preprocessing._statistics import COLUMNS, Running

DTYPE_NAMES = {
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float32: "float32",
    torch.float64: "float64",
}
KEYS = (
    "scaler",
    "n_features_in_",
    "stats",
    "shift",
    "moments",
    "n_rows",
    "dtype",
    "weighted",
    "kind",
)


def to_state_dict(name: str, running: Running | None, kind: str) -> dict:
    if running is None:
        return dict.fromkeys(KEYS) | {"scaler": name, "kind": kind}
    return {
        "scaler": name,
        "n_features_in_": running.n_features,
        "stats": torch.from_numpy(running.stats.copy()),
        "shift": torch.from_numpy(running.shift.copy()),
        "moments": running.moments,
        "n_rows": running.n_rows,
        "dtype": DTYPE_NAMES[running.dtype],
        "weighted": running.weighted,
        "kind": kind,
    }


def _float64(state_dict, key, shape):
    value = state_dict[key]
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float64:
        raise ValueError(f"state_dict[{key!r}]: expected a float64 tensor, got {value!r}")
    if tuple(value.shape) != shape:
        raise ValueError(f"state_dict[{key!r}]: expected shape {shape}, got {tuple(value.shape)}")
    return value.detach().cpu().numpy().copy()


def from_state_dict(name: str, state_dict) -> tuple[Running | None, str]:
    """(running statistics or None, attribute kind), checked: raises ValueError naming the
    first bad entry."""
    if not isinstance(state_dict, dict) or set(state_dict) != set(KEYS):
        got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
        raise ValueError(f"state_dict: expected the keys {sorted(KEYS)}, got {got}")
    if state_dict["scaler"] != name:
        raise ValueError(f"state_dict: holds a {state_dict['scaler']}, not a {name}")
    kind = state_dict["kind"]
    if kind not in ("numpy", "torch"):
        raise ValueError(f"state_dict['kind']: expected 'numpy' or 'torch', got {kind!r}")
    features = state_dict["n_features_in_"]
    if features is None:
        return None, kind
    if not isinstance(features, int) or features < 1:
        raise ValueError(f"state_dict['n_features_in_']: expected a positive int, got {features!r}")
    dtypes = {text: dtype for dtype, text in DTYPE_NAMES.items()}
    if state_dict["dtype"] not in dtypes:
        raise ValueError(
            f"state_dict['dtype']: expected one of {sorted(dtypes)}, got {state_dict['dtype']!r}"
        )
    n_rows = state_dict["n_rows"]
    if not isinstance(n_rows, int) or n_rows < 0:
        raise ValueError(f"state_dict['n_rows']: expected an int >= 0, got {n_rows!r}")
    running = Running(
        stats=_float64(state_dict, "stats", (features, COLUMNS)),
        shift=_float64(state_dict, "shift", (features,)),
        moments=bool(state_dict["moments"]),
        n_rows=n_rows,
        dtype=dtypes[state_dict["dtype"]],
        weighted=bool(state_dict["weighted"]),
    )
    return running, kind
