"""Optimizer state in 8-bit form, and conversions between the two precisions.

[note: 8-bit state layout] A moment ``key`` (``exp_avg``, ``exp_avg_sq``,
``max_exp_avg_sq``, ``momentum_buffer``) kept in 8 bits is two plain tensors
in the param's state: ``key + "_codes"``, uint8 laid out like the param's real
view (one code per element, same shape and strides), and ``key + "_absmax"``,
float32, one per block of ``block_size`` elements in the param's memory
order. The second moments' codes hold their square roots (csrc/ops/quant8.h).
Plain tensors load with ``torch.load(weights_only=True)`` and move with
``.to()``; nothing depends on a tensor subclass.

A param's state is in one form or the other, and the optimizer that loads a
state dict converts each entry to the form it keeps for that param
(quantized on load, dequantized on load): a checkpoint can switch precision
mid-training. ``dequantized_state_dict`` does the same for torch.optim.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from fusedoptim import _backend

# The moments that take the 8-bit form, and how each is encoded.
MOMENT_KINDS = {
    "exp_avg": _backend.SIGNED_MOMENT,
    "exp_avg_sq": _backend.SECOND_MOMENT,
    "max_exp_avg_sq": _backend.SECOND_MOMENT,
    "momentum_buffer": _backend.SIGNED_MOMENT,
}

# The param group options of the optimizers with 8-bit state.
GROUP_KEYS = ("block_size", "min_8bit_size")
DEFAULT_BLOCK_SIZE = 256
DEFAULT_MIN_8BIT_SIZE = 4096
MAX_BLOCK_SIZE = 4096  # csrc/cpu/quant_kernels.h kMaxQuantBlock


def codes_key(moment: str) -> str:
    return moment + "_codes"


def absmax_key(moment: str) -> str:
    return moment + "_absmax"


def is_quantized(entry: dict) -> bool:
    """Whether a param's state holds its moments in 8-bit form."""
    return any(codes_key(moment) in entry for moment in MOMENT_KINDS)


def check_block_size(value: Any, where: str = "block_size") -> None:
    ok = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 32 <= value <= MAX_BLOCK_SIZE
        and value & (value - 1) == 0
    )
    if not ok:
        raise ValueError(
            f"Invalid {where}: {value!r}; block_size must be a power of two from 32 to "
            f"{MAX_BLOCK_SIZE} (elements per absmax, as in bitsandbytes)"
        )


def check_min_8bit_size(value: Any, where: str = "min_8bit_size") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"Invalid {where}: {value!r}; expected an int >= 0")


def check_quantization_group(where: str, group: dict[str, Any]) -> None:
    """A param group's 8-bit options, wherever a group comes from (the
    constructor, add_param_group, an edit between steps, a state dict)."""
    check_block_size(group.get("block_size"), f"block_size in {where}")
    check_min_8bit_size(group.get("min_8bit_size"), f"min_8bit_size in {where}")


def num_blocks(numel: int, block_size: int) -> int:
    return -(-numel // block_size)


def real_view(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def memory_view(t: torch.Tensor) -> torch.Tensor:
    """A 1-D view of a dense tensor's elements in memory order (the order the
    kernels walk, and the order of the blocks)."""
    if t.is_contiguous():
        return t.view(-1)
    order = sorted(range(t.dim()), key=lambda d: (t.stride(d), t.shape[d]), reverse=True)
    return t.permute(order).view(-1)


def new_codes(like: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero codes and absmax for a param laid out as ``like`` (zero decodes as 0)."""
    like = real_view(like)
    codes = torch.zeros_like(like, dtype=torch.uint8, memory_format=torch.preserve_format)
    absmax = torch.zeros(num_blocks(like.numel(), block_size), device=like.device)
    return codes, absmax


def check_codes(label: str, like: torch.Tensor, moment: str, entry: dict, block_size: int) -> None:
    """The checks of one 8-bit moment against the tensor the kernel updates."""
    like = real_view(like)
    codes, absmax = entry.get(codes_key(moment)), entry.get(absmax_key(moment))
    for key, t in ((codes_key(moment), codes), (absmax_key(moment), absmax)):
        if not isinstance(t, torch.Tensor) or t.layout != torch.strided:
            raise TypeError(f"{label}: state '{key}' must be a dense tensor, got {type(t)}")
        if t.device != like.device:
            raise RuntimeError(
                f"{label}: state '{key}' is on {t.device} but the param is on {like.device}"
            )
    if codes.dtype != torch.uint8 or codes.shape != like.shape:
        raise ValueError(
            f"{label}: state '{codes_key(moment)}' must be uint8 of shape {tuple(like.shape)} "
            f"(the param's real view), got {codes.dtype} of shape {tuple(codes.shape)}"
        )
    if not _same_layout(codes, like):
        raise ValueError(
            f"{label}: state '{codes_key(moment)}' has strides {codes.stride()} but the param "
            f"has {like.stride()}; 8-bit state is laid out like its param"
        )
    blocks = num_blocks(like.numel(), block_size)
    if absmax.dtype != torch.float32 or absmax.shape != (blocks,) or not absmax.is_contiguous():
        raise ValueError(
            f"{label}: state '{absmax_key(moment)}' must be a contiguous float32 tensor of "
            f"{blocks} blocks (block_size={block_size}), got {absmax.dtype} of shape "
            f"{tuple(absmax.shape)}; block_size cannot change once the state exists"
        )


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_contiguous() and b.is_contiguous():
        return True
    return all(sa == sb for sa, sb, n in zip(a.stride(), b.stride(), b.shape) if n != 1)


def quantize_tensor(
    moment: str, value: torch.Tensor, like: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, absmax) of one float moment, laid out like ``like``."""
    like = real_view(like)
    value = real_view(value.detach())
    if value.shape != like.shape:
        # copy_ would broadcast a (1,)-shaped moment over the whole param.
        raise ValueError(
            f"{moment} has shape {tuple(value.shape)} but the param has {tuple(like.shape)}"
        )
    values = torch.empty_like(like, dtype=torch.float32, memory_format=torch.preserve_format)
    values.copy_(value.to(like.device))
    codes, absmax = new_codes(like, block_size)
    _backend.quantize_moment(
        MOMENT_KINDS[moment], memory_view(values), memory_view(codes), absmax, block_size
    )
    return codes, absmax


def dequantize_tensor(
    moment: str, codes: torch.Tensor, absmax: torch.Tensor, block_size: int
) -> torch.Tensor:
    """The float32 values of one 8-bit moment, laid out as its codes."""
    values = torch.empty_like(codes, dtype=torch.float32, memory_format=torch.preserve_format)
    _backend.dequantize_moment(
        MOMENT_KINDS[moment],
        memory_view(codes),
        absmax.contiguous(),
        memory_view(values),
        block_size,
    )
    return values


def quantize_entry(entry: dict, like: torch.Tensor, block_size: int) -> None:
    """Replaces the float moments of one param's state by their 8-bit form."""
    for moment in MOMENT_KINDS:
        value = entry.get(moment)
        if isinstance(value, torch.Tensor) and value.layout == torch.strided:
            codes, absmax = quantize_tensor(moment, value, like, block_size)
            del entry[moment]
            entry[codes_key(moment)], entry[absmax_key(moment)] = codes, absmax


def dequantize_entry(
    entry: dict, param: torch.Tensor | None, block_size: int, dtype: torch.dtype | None = None
) -> None:
    """Replaces the 8-bit moments of one param's state by float tensors: of
    ``dtype`` (default: the param's), the param's device and shape when it is
    given, else float32 of the codes' shape (a complex param's real view as in
    torch: complex). Master weights keep fp32 moments: no detour through the
    param's half precision."""
    for moment in MOMENT_KINDS:
        codes = entry.pop(codes_key(moment), None)
        absmax = entry.pop(absmax_key(moment), None)
        if codes is None:
            continue
        values = dequantize_tensor(moment, codes, absmax, block_size)
        if param is not None:
            if param.is_complex():
                values = torch.view_as_complex(values.contiguous())
            values = values.to(dtype=dtype or param.dtype, device=param.device)
        entry[moment] = values


def dequantized_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of an optimizer state dict (tensors included) with every 8-bit
    moment in float32.

    ``torch.optim.AdamW(...).load_state_dict(fusedoptim.dequantized_state_dict(
    fusedoptim.AdamW8bit(...).state_dict()))``: the result has torch.optim's
    layout (``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``,
    ``momentum_buffer``) and its param groups lose the 8-bit options. A
    complex param's moments come back as their real view (float32 of shape
    ``(..., 2)``): torch.optim casts them to the param's dtype only for
    floating params, so convert those through the optimizer instead.
    """
    out = {"state": {}, "param_groups": copy.deepcopy(state_dict["param_groups"])}
    block_of = {}
    for group in out["param_groups"]:
        block_size = group.pop("block_size", DEFAULT_BLOCK_SIZE)
        group.pop("min_8bit_size", None)
        for index in group["params"]:
            block_of[index] = block_size
    for index, entry in state_dict["state"].items():
        # A copy, like the param groups: the tensors of a live optimizer's
        # state_dict() are its state (a step counter shared by two optimizers
        # would count twice).
        entry = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
        if is_quantized(entry):
            dequantize_entry(entry, None, block_of.get(index, DEFAULT_BLOCK_SIZE))
        out["state"][index] = entry
    return out


def take_uncast(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """(a shallow copy of state_dict without the tensors that must keep their
    dtype, {index: those tensors}): torch.optim's load_state_dict casts every
    floating state tensor to its param's dtype, which would turn an fp32
    absmax, an fp32 master param or its fp32 moments into bf16."""
    kept, taken = {}, {}
    for index, entry in state_dict["state"].items():
        if not isinstance(entry, dict):
            kept[index] = entry
            continue
        keys = [k for k in entry if k.endswith(("_codes", "_absmax"))]
        if "master_param" in entry:
            keys += ["master_param", *(m for m in MOMENT_KINDS if m in entry)]
        if keys:
            taken[index] = {k: entry[k] for k in keys}
        kept[index] = {k: v for k, v in entry.items() if k not in keys}
    return {**state_dict, "state": kept}, taken
