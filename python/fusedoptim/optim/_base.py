"""What SGD, Adam and AdamW share: the two-phase fused step.

Phase 1 walks every param group, collects the params that have a gradient and
checks them with their state (``_collect``). Phase 2 creates missing state and
runs one fused call per group and dtype (``_apply``). Nothing is written
before every group has passed phase 1, so a refused step loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from fusedoptim import _validation
from fusedoptim.optim._dtensor import local_tensor


class FusedOptimizer(Optimizer):
    """Base class; subclasses implement ``_collect`` and ``_apply``."""

    # Keys that fusedoptim adds to torch's param group layout, with defaults
    # for state dicts saved by torch.optim or by older fusedoptim versions.
    _extra_group_defaults: dict[str, Any] = {"l1": 0.0}

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        if defaults.get("capturable"):
            raise ValueError(
                f"{type(self).__name__}: capturable=True (CUDA graph capture) is not supported by "
                "fusedoptim; use torch.optim with capturable=True for graph capture"
            )
        if defaults.get("differentiable"):
            raise ValueError(
                f"{type(self).__name__}: differentiable=True is not supported by fusedoptim; "
                "the fused step is not part of the autograd graph"
            )
        super().__init__(params, defaults)

    # torch's step hooks wrap `type(self).step` once per class (see
    # Optimizer._patch_step_function); subclasses must not override `step`,
    # or a chained super().step() would fire every hook twice.
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform a single optimization step.

        Args:
            closure (Callable, optional): A closure that reevaluates the model
                and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [self._collect(index, group) for index, group in enumerate(self.param_groups)]
        for group, items in zip(self.param_groups, work):
            if items:
                self._apply(group, items)
        return loss

    def _collect(self, group_index: int, group: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def _apply(self, group: dict[str, Any], items: list[Any]) -> None:
        raise NotImplementedError

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._extra_group_defaults.items():
                group.setdefault(key, value)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a fusedoptim or torch.optim state dict.

        Group options missing from the saved dict (``l1`` in a torch.optim
        state dict, keys newer than the saving version) keep this optimizer's
        current values instead of falling back to defaults.
        """
        state_dict = dict(state_dict)
        saved_groups = [dict(g) for g in state_dict["param_groups"]]
        for saved, current in zip(saved_groups, self.param_groups):
            for key, value in current.items():
                if key not in ("params", "param_names"):
                    saved.setdefault(key, value)
        state_dict["param_groups"] = saved_groups
        super().load_state_dict(state_dict)


def param_labeller(optimizer: Optimizer, group_index: int, group: dict[str, Any]) -> Callable:
    """Returns label(i): how error messages name the i-th param of a group."""
    names = group.get("param_names")
    kind = type(optimizer).__name__

    def label(i: int) -> str:
        if names is not None and i < len(names):
            return f"{kind}: parameter '{names[i]}' (param group {group_index})"
        return f"{kind}: params[{i}] of param group {group_index}"

    return label


def check_single_device(label: str, param: torch.Tensor, device: torch.device | None) -> None:
    if device is not None and param.device != device:
        raise RuntimeError(
            f"{label} is on {param.device} but earlier params of the same group are on "
            f"{device}; a fused step needs each param group on one device"
        )


def to_float(value: Any) -> float:
    """A hyperparameter as a Python float (LR schedulers may store 0-dim tensors)."""
    return value.item() if isinstance(value, torch.Tensor) else float(value)


def real_view(t: torch.Tensor) -> torch.Tensor:
    # Every tensor the checks and the kernels see passes through here: the
    # local shard of a DTensor (see _dtensor.py), and, as torch.optim updates
    # complex params through their real view, that view.
    t = local_tensor(t)
    return torch.view_as_real(t) if t.is_complex() else t


def by_dtype(items: Iterable[Any], param_of: Callable[[Any], torch.Tensor]) -> dict:
    """Groups items by the param's (real) dtype: one fused call per dtype."""
    groups: dict[torch.dtype, list[Any]] = {}
    for item in items:
        groups.setdefault(real_view(param_of(item)).dtype, []).append(item)
    return groups


def check_group_hyperparameters(kind: str, group_index: int, group: dict, keys: tuple) -> None:
    """Hyperparameters may be edited between steps (schedulers, users): each must
    still be a finite number when the step starts, before any group is written."""
    for key in keys:
        values = group[key] if isinstance(group[key], tuple) else (group[key],)
        for value in values:
            number = to_float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(
                    f"{kind}: param group {group_index} has non-finite {key} = {value}"
                )


def validate_common(label: str, param: torch.Tensor, l1: float) -> None:
    if param.is_complex() and l1 != 0:
        raise ValueError(f"{label}: l1 is not defined for complex params; use l1=0 for this group")


check_tensors = _validation.check_tensors
check_step_counter = _validation.check_step_counter
