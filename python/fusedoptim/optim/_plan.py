"""Per-group plans: what a fused step can reuse from the previous step.

[note: why plans] For a model with hundreds of small tensors, reading a
tensor's metadata from Python (~0.1 us per attribute) costs more than the
update itself. A plan keeps, per param group, the validated layout of the
call: the params, their state tensors and every address except the grads'.
Each step re-checks, at C speed (``_C.GradWatch`` for the params and grads,
``_C.entries_unchanged`` for the state dicts), everything that can change
between steps:

- the group's param list (``add_param_group``, appends, replacements),
- each param's address (``p.data = ...``, ``model.to(...)``),
- which params have a grad, and each grad's dtype, layout, size, device and
  contiguity (autograd re-creates grads every step with
  ``zero_grad(set_to_none=True)``); for complex params, that neither the
  param nor its grad is lazily conjugated (the backward of ``p.conj()``),
- for a group with complex params, that ``l1`` is still 0 (refused for them),
- the state: the ``state`` mapping itself (a VersionedState counts changes
  to it: ``load_state_dict``, ``opt.state[p] = ...``) and, per param, the
  identity of every state tensor a kernel reads.

Anything unexpected sends the step down the slow path, which validates
everything and raises a precise error or builds a new plan. Params with a
sparse grad (SGD) and params that are views with gaps (updated in a staging
copy, see [note: staged params] in _base.py) stay outside the plan: the
optimizer checks them itself every step (``outside``). Plans are not part of ``state_dict`` or of a
deepcopy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch

from fusedoptim import _backend

_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


class VersionedState(defaultdict):
    """``Optimizer.state`` that counts changes to its param -> state-dict mapping."""

    version = 0

    def _changed(self) -> None:
        self.version += 1

    def __setitem__(self, key: Any, value: Any) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._changed()
        super().__delitem__(key)

    def __missing__(self, key: Any) -> Any:
        self._changed()
        return super().__missing__(key)

    def clear(self) -> None:
        self._changed()
        super().clear()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._changed()
        return super().popitem()

    def setdefault(self, *args: Any) -> Any:
        self._changed()
        return super().setdefault(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> VersionedState:
        self._changed()
        return super().__ior__(other)

    def __reduce__(self) -> Any:
        # Pickle and deepcopy as the plain defaultdict torch.optim uses.
        return (defaultdict, (self.default_factory,), None, None, iter(self.items()))


def versioned(state: Any) -> VersionedState:
    if isinstance(state, VersionedState):
        return state
    wrapped = VersionedState(dict)
    dict.update(wrapped, state)
    return wrapped


@dataclass
class Batch:
    """One fused call of a plan: the positions (into the plan's params) it covers."""

    positions: list[int]
    call: Any  # _C.AdamCall or _C.SgdCall (see _backend.adam_call / sgd_call)
    stochastic_round: bool = False  # bf16 params rounded stochastically


@dataclass
class GroupPlan:
    group: dict[str, Any]
    structure: tuple  # the group options that shaped the plan (e.g. amsgrad)
    params: list[torch.Tensor]  # the params with a dense grad, in group order
    watch: Any  # _C.GradWatch over group["params"]
    state_dicts: list[dict]
    state_keys: tuple[str, ...]
    state_tensors: list[Any]  # flat: state_dicts[i][state_keys[k]]
    state_version: int
    has_complex: bool  # then a nonzero l1 is refused, by the slow path
    # (position in group["params"], param): params with a sparse grad or a
    # staging copy, which the optimizer checks and updates itself each step.
    outside: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        group: dict[str, Any],
        structure: tuple,
        params: list[torch.Tensor],
        state: VersionedState,
        state_keys: tuple[str, ...],
        outside: list[torch.Tensor] = (),
    ) -> GroupPlan | None:
        """A plan for the params that have a grad now, or None when the group
        has something the fast check does not cover: non-contiguous or DTensor
        params (a DTensor's own address is 0; its shard is checked per step).
        Complex params are planned through their real views, as the slow path
        launches them."""
        if any(type(p) not in _PLAIN_TYPES or not p.is_contiguous() for p in params):
            return None
        state_dicts = [state[p] for p in params] if state_keys else []
        outside_ids = {id(p) for p in outside}
        is_outside = [id(p) in outside_ids for p in group["params"]]
        return cls(
            group=group,
            structure=structure,
            params=list(params),
            watch=_backend.grad_watch(group["params"], params, is_outside),
            state_dicts=state_dicts,
            state_keys=state_keys,
            state_tensors=[d.get(k) for d in state_dicts for k in state_keys],
            state_version=state.version,
            has_complex=any(p.is_complex() for p in params),
            outside=[(i, p) for i, p in enumerate(group["params"]) if is_outside[i]],
        )

    def current_grads(
        self, group: dict[str, Any], structure: tuple, state: VersionedState
    ) -> list[torch.Tensor] | None:
        """This step's grads (one per planned param) when the plan still holds, else None.

        On success ``self.watch`` also holds the grads' addresses for the launch.
        The params ``outside`` are not looked at: the caller checks them.
        """
        if (
            group is not self.group
            or structure != self.structure
            or state.version != self.state_version
            or (self.has_complex and group["l1"] != 0)
        ):
            return None
        grads = self.watch.collect(group["params"])
        if grads is None:
            return None
        if self.state_keys and not _backend.entries_unchanged(
            self.state_dicts, self.state_keys, self.state_tensors
        ):
            return None
        return grads
