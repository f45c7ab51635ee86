"""Turn what users pass (numpy arrays, lists, torch tensors on any device) into checked
2-D float torch tensors, without copying data that is already fit to use.

numpy data is wrapped with ``torch.from_numpy`` (no copy), so one code path serves both
kinds; results go back to numpy when the input was not a torch tensor. Every check here
runs before a scaler touches its statistics or any output.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch

# Float dtypes kept as they are, as scikit-learn keeps float16/float32/float64 (bfloat16, which
# numpy lacks, is kept too: torch in, torch out). The C++ kernels read float32 and float64;
# the half types are fitted from a float32 copy and transformed with torch operations.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
KERNEL_DTYPES = (torch.float32, torch.float64)
_NUMPY_FLOATS = (np.float16, np.float32, np.float64)


def rounded(value, dtype: torch.dtype) -> torch.Tensor:
    """A number (or float64 numpy array) rounded to ``dtype`` as numpy rounds it (directly
    from double), as a CPU tensor. torch has no direct double -> bfloat16 path to compare
    with; bfloat16 goes through torch's own conversion."""
    if dtype == torch.bfloat16:
        return torch.as_tensor(value, dtype=torch.float64).to(dtype)
    return torch.from_numpy(np.asarray(value, dtype=str(dtype).removeprefix("torch.")))


class NotFittedError(ValueError, AttributeError):
    """A scaler was used before ``fit`` (scikit-learn's exception of the same name)."""


@dataclass
class Matrix:
    """A checked (n_samples, n_features) float tensor and where it came from."""

    tensor: torch.Tensor
    kind: str  # "numpy" (numpy arrays, lists) or "torch"
    source: object  # what the caller passed
    shares_memory: bool  # tensor is the caller's own data (no conversion copy was made)


def _is_sparse(x) -> bool:
    if isinstance(x, torch.Tensor):
        return x.layout != torch.strided
    return type(x).__module__.startswith("scipy.sparse")


def _numpy_matrix(x, name):
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: could not read the input as a 2-D array of numbers") from error
    kind = arr.dtype.kind
    if kind == "c":
        raise ValueError(f"{name}: complex values are not supported")
    if kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: could not convert the values to float64") from error
    elif kind not in "biuf":
        raise ValueError(
            f"{name}: expected numbers, got an array of dtype {arr.dtype}; "
            "convert your data to numeric values first"
        )
    return arr


def _from_numpy(arr):
    """(tensor, shares_memory): float arrays are wrapped, others converted as scikit-learn
    converts them (to float64)."""
    shares = True
    if arr.dtype not in _NUMPY_FLOATS:
        arr = arr.astype(np.float64)
        shares = False
    elif not arr.dtype.isnative or min(arr.strides, default=0) < 0:
        # torch.from_numpy rejects foreign byte order and negative strides (x[::-1]).
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)
        shares = False
    if not arr.flags.writeable:
        # The data is only read through this view (in-place transforms of read-only
        # arrays copy first, as scikit-learn's force_writeable does); torch warns anyway.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(arr), shares
    return torch.from_numpy(arr), shares


def as_matrix(x, name="X") -> Matrix:
    """x as a checked 2-D float tensor (float dtypes are kept, everything else becomes
    float64, as in scikit-learn). Raises TypeError for sparse input and ValueError
    for complex or non-numeric values, a dimension other than 2, or an empty dimension."""
    if _is_sparse(x):
        raise TypeError(
            f"{name}: sparse input is not supported; pass a dense numpy array or torch tensor"
        )
    if isinstance(x, torch.Tensor):
        kind = "torch"
        if x.is_complex():
            raise ValueError(f"{name}: complex values are not supported")
        shape = tuple(x.shape)
    else:
        kind = "numpy"
        arr = _numpy_matrix(x, name)
        shape = arr.shape
    if len(shape) != 2:
        hint = (
            "; reshape it with .reshape(-1, 1) if it holds one feature, or .reshape(1, -1) "
            "if it holds one sample"
            if len(shape) == 1
            else ""
        )
        raise ValueError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features), got "
            f"{len(shape)} dimension(s), shape {shape}{hint}"
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(
            f"{name}: found an array of shape {shape}; at least 1 sample and 1 feature are required"
        )
    if kind == "torch":
        t = x.detach()
        shares = t.dtype in FLOAT_DTYPES
        if not shares:
            t = t.to(torch.float64)
        return Matrix(t, kind, x, shares)
    t, shares = _from_numpy(arr)
    return Matrix(t, kind, x, shares and arr is x)


def check_n_features(matrix: Matrix, expected: int, owner: str, name="X") -> None:
    found = matrix.tensor.shape[1]
    if found != expected:
        raise ValueError(
            f"{name} has {found} features, but {owner} is expecting {expected} features as input."
        )


def as_sample_weight(sample_weight, matrix: Matrix) -> torch.Tensor | None:
    """One float64 weight per row on the data's device, contiguous; None stays None. As in
    scikit-learn, weights are first rounded to X's dtype when that is float32 (float64 for
    the half types), and NaN/inf weights and all-zero weights are refused."""
    if sample_weight is None:
        return None
    x = matrix.tensor
    rows = x.shape[0]
    dtype = x.dtype if x.dtype in KERNEL_DTYPES else torch.float64
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        w = torch.full((rows,), float(sample_weight), dtype=dtype, device=x.device)
    else:
        if isinstance(sample_weight, torch.Tensor):
            w = sample_weight.detach()
            if w.is_complex():
                raise ValueError("sample_weight: complex values are not supported")
        else:
            arr = _numpy_matrix(sample_weight, "sample_weight")
            w = torch.from_numpy(np.array(arr, dtype=np.float64))
        if w.ndim != 1 or w.shape[0] != rows:
            raise ValueError(
                f"sample_weight: expected shape ({rows},), one weight per sample, "
                f"got {tuple(w.shape)}"
            )
        w = w.to(device=x.device, dtype=dtype)
    w = w.to(torch.float64).contiguous()
    if not bool(torch.isfinite(w).all()):
        raise ValueError("sample_weight: contains NaN or infinity")
    if not bool((w != 0).any()):
        raise ValueError("sample_weight: must contain at least one non-zero weight")
    return w


def first_inf_message(flat_index: int, features: int, name="X") -> str:
    row, feature = divmod(int(flat_index), features)
    return (
        f"{name} contains infinity (row {row}, feature {feature}); the scalers accept "
        "finite values and NaN (read as missing)"
    )
