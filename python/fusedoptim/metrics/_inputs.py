"""Turn user inputs (torch tensors, numpy arrays, lists) into checked torch tensors.

numpy inputs are wrapped with ``torch.from_numpy`` (no copy) so one code path serves
both; results go back to numpy when no input was a torch tensor (see ``Output``).
"""

from __future__ import annotations

import numpy as np
import torch

# [note: binary probabilities] A 1-D floating y_pred is read as the probability of
# class 1 and thresholded at 0.5: class 1 when p > 0.5 (as Keras and torchmetrics do).
# Logits must go through a sigmoid first; values outside [0, 1] are rejected. The
# functions read a y_pred of whole numbers (``[0., 2., 1.]``) as labels, as
# scikit-learn does (which refuses fractional y_pred); the streaming metrics always
# read 1-D floats as probabilities, since looking at the values would wait for a GPU.
BINARY_THRESHOLD = 0.5


def to_tensor(x, name):
    """A tensor view of x (torch tensor, numpy array, list or scalar), never a bool dtype."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"{name}: expected numbers, got an array of dtype {arr.dtype}; "
                "encode string or object labels as integers first"
            )
        if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
            # torch has no arithmetic for uint16/32/64. uint64 values past int64 would
            # wrap: float64 keeps them for regression, and class labels refuse them
            # (whole_to_int64).
            big = arr.dtype.itemsize == 8 and arr.size and arr.max() > np.iinfo(np.int64).max
            arr = arr.astype(np.float64 if big else np.int64)
        elif not arr.flags.writeable or not arr.dtype.isnative or min(arr.strides, default=0) < 0:
            # torch.from_numpy warns on read-only arrays and rejects foreign byte order
            # and negative strides (reversed views such as x[::-1]); other arrays are
            # wrapped without a copy.
            arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)
        t = torch.from_numpy(arr)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.is_complex():
        raise ValueError(f"{name}: complex values are not supported")
    return t


def check_flag(value, name):
    """True or False (np.bool_ too), as sklearn's "boolean" parameters: 0, 1, None and
    strings are refused (normalize=None would otherwise count instead of average)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def any_torch(*xs):
    return any(isinstance(x, torch.Tensor) for x in xs)


def same_device(tensors, names):
    """Moves CPU tensors to the one non-CPU device among them (if any)."""
    devices = {t.device for t in tensors if t is not None and t.device.type != "cpu"}
    if len(devices) > 1:
        raise ValueError(
            f"{', '.join(names)} are on different devices: {sorted(map(str, devices))}"
        )
    if not devices:
        return tensors
    device = devices.pop()
    return [t if t is None else t.to(device) for t in tensors]


def is_float(t):
    return t.is_floating_point()


def is_integral(t):
    """Whether every value of the float tensor t is a finite whole number (host sync)."""
    return bool((torch.isfinite(t) & (t == t.round())).all())


def whole_to_int64(t, name):
    """The whole-number float tensor t as int64 labels (host sync). Values outside
    [-2**63, 2**63) would wrap in the cast: refused (sklearn reads such floats as
    continuous targets, as its cast to int changes them, and refuses them too)."""
    outside = (t < -(2.0**63)) | (t >= 2.0**63)
    if bool(outside.any()):
        raise ValueError(
            f"{name}: {t[outside][0].item():g} is outside the int64 range class labels must fit in"
        )
    return t.to(torch.int64)


def looks_like_labels(y):
    """Whether y has the form of class labels: integers of shape (N,) or (N, 1)."""
    return not is_float(y) and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1))


def class_labels(y, name, strict=False, hint=None):
    """y as a 1-D integer tensor of class labels.

    Floats holding whole numbers (``[0., 1., 2.]``) are cast, as scikit-learn reads
    them as labels; other floats are refused, not rounded. ``strict`` (the streaming
    metrics) refuses every float: checking the values would wait for a GPU. ``hint``
    ends the message of a refusal.
    """
    end = f"; {hint}" if hint else ""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{name}: expected a 1-D array of class labels, got shape {tuple(y.shape)}{end}"
        )
    if is_float(y) and y.numel() == 0:
        return y.to(torch.int64)  # np.asarray([]) is float64 (no range check: no GPU wait)
    if is_float(y) and not strict and is_integral(y):
        return whole_to_int64(y, name)
    if is_float(y):
        what = "integer class labels" if strict else "whole-number class labels"
        raise ValueError(
            f"{name}: expected {what}, got {y.dtype} values; "
            f"cast with .long() (torch) or .astype(int) (numpy){end}"
        )
    return y


def prediction_labels(y_pred, num_classes=None, deferred=False, name="y_pred"):
    """Class labels from y_pred, plus a 0-d count of invalid probabilities (or None).

    y_pred may be labels (1-D integers), scores/probabilities of shape (N, C) (argmax
    over classes), or 1-D probabilities of class 1 (see [note: binary probabilities]).
    With ``deferred`` and a non-CPU tensor the count is left on the device for the
    caller to check later (no sync); otherwise invalid probabilities raise at once.
    """
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred[:, 0]  # a column, read as 1-D (sklearn's column_or_1d), like y_true
    if y_pred.ndim == 2:
        if not is_float(y_pred):
            raise ValueError(
                f"{name}: a 2-D integer array looks like multilabel/one-hot targets, which "
                "are not supported; pass class labels or float scores of shape (N, C)"
            )
        if num_classes is not None and y_pred.shape[1] != num_classes:
            raise ValueError(
                f"{name}: scores have {y_pred.shape[1]} classes, expected num_classes={num_classes}"
            )
        return y_pred.argmax(dim=1), None
    if y_pred.ndim != 1:
        raise ValueError(
            f"{name}: expected labels (N,), probabilities (N,) or scores (N, C), "
            f"got shape {tuple(y_pred.shape)}"
        )
    if not is_float(y_pred):
        return y_pred, None
    if y_pred.numel() == 0:
        return y_pred.to(torch.int64), None  # np.asarray([]) is float64: no probabilities
    if not deferred and is_integral(y_pred):
        # Whole numbers are labels, as in scikit-learn; for 0/1 values both readings
        # agree, so only fractional values are read as probabilities.
        return whole_to_int64(y_pred, name), None
    if num_classes is not None and num_classes != 2:
        raise ValueError(
            f"{name}: 1-D float values are read as binary probabilities, but num_classes="
            f"{num_classes}; pass integer labels or scores of shape (N, {num_classes})"
        )
    invalid = ((y_pred < 0) | (y_pred > 1) | torch.isnan(y_pred)).sum()
    if not deferred or y_pred.device.type == "cpu":
        if int(invalid):
            raise ValueError(
                f"{name}: 1-D float values are read as probabilities of class 1 (threshold "
                f"{BINARY_THRESHOLD}), but {int(invalid)} lie outside [0, 1] or are NaN; "
                "pass integer labels, or apply a sigmoid to logits"
            )
        invalid = None
    return (y_pred > BINARY_THRESHOLD).to(torch.int64), invalid


def check_lengths(y_true, y_pred, sample_weight=None, names=("y_true", "y_pred")):
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} have different lengths: "
            f"{y_true.shape[0]} and {y_pred.shape[0]}"
        )
    if sample_weight is not None and sample_weight.shape != (y_true.shape[0],):
        raise ValueError(
            f"sample_weight: expected shape ({y_true.shape[0]},), got {tuple(sample_weight.shape)}"
        )


def check_sample_weight(w):
    """scikit-learn's checks on sample weights: finite, and not all zero (host sync)."""
    if w is None:
        return
    if not bool(torch.isfinite(w).all()):
        raise ValueError("sample_weight: contains NaN or infinity")
    if w.numel() and not bool((w != 0).any()):
        raise ValueError("sample_weight: must contain at least one non-zero weight")


def kernel_labels(y_true, y_pred):
    """Both label arrays in one dtype the counting kernel reads (int32 or int64)."""
    if y_true.dtype == y_pred.dtype and y_true.dtype in (torch.int32, torch.int64):
        return y_true.contiguous(), y_pred.contiguous()
    return y_true.to(torch.int64).contiguous(), y_pred.to(torch.int64).contiguous()


def classification_inputs(
    y_true,
    y_pred,
    sample_weight=None,
    num_classes=None,
    deferred=False,
    names=("y_true", "y_pred"),
    order_hint=None,
):
    """(y_true, y_pred, sample_weight, invalid, as_numpy) ready for counting; ``invalid``
    is None unless ``deferred`` (see prediction_labels). ``names`` are the caller's
    names of the two arguments; ``order_hint`` ends the refusal of a y_true that is not
    labels while y_pred is (the two given in the wrong order)."""
    as_numpy = not any_torch(y_true, y_pred, sample_weight)
    t = to_tensor(y_true, names[0])
    p = to_tensor(y_pred, names[1])
    w = None if sample_weight is None else to_tensor(sample_weight, "sample_weight")
    t, p, w = same_device([t, p, w], [*names, "sample_weight"])
    hint = order_hint if looks_like_labels(p) else None
    t = class_labels(t, names[0], strict=deferred, hint=hint)
    p, invalid = prediction_labels(p, num_classes, deferred, names[1])
    check_lengths(t, p, w, names)
    t, p = kernel_labels(t, p)
    return t, p, w, invalid, as_numpy


class Output:
    """Converts results to the caller's kind: numpy in -> numpy out, torch in -> torch out."""

    def __init__(self, as_numpy):
        self.as_numpy = as_numpy

    def array(self, t):
        return t.cpu().numpy() if self.as_numpy else t

    @staticmethod
    def scalar(t):
        return float(t)
