"""The confusion-matrix counting kernel (_C.confusion_matrix_add via _backend) against
numpy's bincount: exact counts, both label dtypes, the single-table and the per-thread
table paths, weights, and bad labels that must leave the counts untouched."""

import numpy as np
import pytest
import torch

from fusedoptim import _C, _backend


def reference(t, p, c, w=None):
    return np.bincount(t * c + p, weights=w, minlength=c * c).reshape(c, c)


# 200_003 labels over 10 classes take the per-thread path (slices of >= 32768 labels);
# 1_001 labels and 300 classes (90_000 cells > n) take the validate-then-count path.
CASES = [(200_003, 10), (1_001, 300), (70_001, 3)]


@pytest.mark.parametrize(("n", "c"), CASES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_counts_exact(n, c, dtype, threads):
    rng = np.random.default_rng(n + c)
    t = rng.integers(0, c, n)
    p = rng.integers(0, c, n)
    counts = torch.full((c, c), 7, dtype=torch.int64)  # adds to what is there
    _backend.confusion_matrix_add_(
        counts, torch.from_numpy(t).to(dtype), torch.from_numpy(p).to(dtype), num_threads=threads
    )
    np.testing.assert_array_equal(counts.numpy(), reference(t, p, c) + 7)


@pytest.mark.parametrize(("n", "c"), CASES)
def test_weighted_counts(n, c):
    rng = np.random.default_rng(1)
    t = rng.integers(0, c, n)
    p = rng.integers(0, c, n)
    w = rng.random(n)
    counts = torch.zeros((c, c), dtype=torch.float64)
    _backend.confusion_matrix_add_(
        counts, torch.from_numpy(t), torch.from_numpy(p), torch.from_numpy(w), num_threads=2
    )
    # Summation order differs from bincount's (per-thread tables): rtol 1e-12.
    np.testing.assert_allclose(counts.numpy(), reference(t, p, c, w), rtol=1e-12)


@pytest.mark.parametrize(("n", "c"), CASES)
@pytest.mark.parametrize("where", ["y_true", "y_pred"])
@pytest.mark.parametrize("bad_value", [-1, "c"])
def test_bad_label_leaves_counts_unchanged(n, c, where, bad_value):
    rng = np.random.default_rng(2)
    t = rng.integers(0, c, n)
    p = rng.integers(0, c, n)
    value = c if bad_value == "c" else bad_value
    index = n - 5  # in the last slice: every earlier slice has already counted
    (t if where == "y_true" else p)[index] = value
    counts = torch.full((c, c), 3, dtype=torch.int64)
    with pytest.raises(ValueError, match=rf"{where}\[{index}\] = {value} is not a class label"):
        _backend.confusion_matrix_add_(
            counts, torch.from_numpy(t), torch.from_numpy(p), num_threads=2
        )
    assert bool((counts == 3).all())


def test_first_bad_label_is_reported():
    t = torch.zeros(100_000, dtype=torch.int64)
    p = torch.zeros(100_000, dtype=torch.int64)
    t[90_000] = 9
    p[40_000] = -2
    with pytest.raises(ValueError, match=r"y_pred\[40000\] = -2"):
        _backend.confusion_matrix_add_(torch.zeros((2, 2), dtype=torch.int64), t, p, num_threads=3)


def test_torch_path_matches_and_counts_invalid_without_raising():
    rng = np.random.default_rng(3)
    t = torch.from_numpy(rng.integers(-1, 6, 5_000))
    p = torch.from_numpy(rng.integers(0, 6, 5_000))
    counts = torch.zeros((5, 5), dtype=torch.int64)
    invalid = _backend._confusion_matrix_add_torch(counts, t, p)
    ok = (t >= 0) & (t < 5) & (p < 5)
    assert int(invalid) == int((~ok).sum())
    expect = torch.zeros((5, 5), dtype=torch.int64)
    _backend.confusion_matrix_add_(expect, t[ok], p[ok])
    assert torch.equal(counts, expect)


def test_empty_input():
    counts = torch.zeros((3, 3), dtype=torch.int64)
    empty = torch.empty(0, dtype=torch.int64)
    assert _backend.confusion_matrix_add_(counts, empty, empty) is None
    assert int(counts.sum()) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_dtype": 2}, "label_dtype"),
        ({"count_dtype": 5}, "count_dtype"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_threads": 0}, "num_threads"),
        ({"size": -1}, "size is negative"),
        ({"y_true": 0}, "y_true is a null address"),
        ({"weights": 8}, "weights need float64 counts"),
        ({"counts": 0}, "counts is a null address"),
    ],
)
def test_binding_checks(kwargs, message):
    t = torch.zeros(4, dtype=torch.int64)
    counts = torch.zeros((2, 2), dtype=torch.int64)
    args = dict(
        y_true=t.data_ptr(),
        y_pred=t.data_ptr(),
        label_dtype=1,
        size=4,
        num_classes=2,
        weights=0,
        counts=counts.data_ptr(),
        count_dtype=0,
        num_threads=1,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        _C.confusion_matrix_add(**args)
