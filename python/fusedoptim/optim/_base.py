"""What SGD, Adam and AdamW share: the two-phase fused step.

Phase 1 walks every param group and either confirms the group's cached plan
(``_plan.GroupPlan.current_grads``, the fast path) or collects the params
that have a grad and checks them with their state (``_collect``, the slow
path, which raises on bad input). Phase 2 creates missing state, builds the
plan and runs one fused call per group, dtype and overlap level (params that
share memory run one after the other, see _overlap.py), then updates the
params whose grad is sparse (SGD only: ``_step_sparse``). Nothing is written
before every group has passed phase 1, so a refused step loses nothing.

[note: staged params] A param that is a view with gaps (``x[:, ::2]``, a
column slice of a larger buffer) cannot be walked as one run of memory. Its
update runs in a dense staging copy: the call copies the param in, the kernel
updates the copy with the param's grad and state (which torch keeps dense for
such a param), and the call writes the copy back. The state has torch's
layout and values, so state dicts move freely between the two. Such params
stay outside the group's cached plan, like sparse grads, unless their memory
interleaves with another param's, in which case the group keeps the slow path
and its calls run in list order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.optim import Optimizer

from fusedoptim import _backend, _validation
from fusedoptim._opaque import opaque_to_dynamo
from fusedoptim._overlap import overlap_levels, shares_memory
from fusedoptim.optim._dtensor import local_tensor
from fusedoptim.optim._plan import Batch, GroupPlan, VersionedState, versioned
from fusedoptim.optim._state_precision import (
    DEFAULT_BLOCK_SIZE,
    GROUP_KEYS,
    MOMENT_KINDS,
    check_quantization_group,
    dequantize_entry,
    is_quantized,
    quantize_entry,
    take_uncast,
)
from fusedoptim.penalties import global_grad_norm

__all__ = ["Batch", "FusedOptimizer", "Item", "fused_calls"]


class Item(NamedTuple):
    """A param with a grad, found by the slow path of a step."""

    param: torch.Tensor
    grad: torch.Tensor
    existing: Any  # the state this step reads (optimizer-specific); None: the step creates it
    # A param that is a view with gaps: the dense copy its update runs in (see
    # [note: staged params]); None for every other param.
    stage: torch.Tensor | None = None

    @property
    def updated(self) -> torch.Tensor:
        """The tensor the kernel updates as the param: its memory, or its stage."""
        return self.param if self.stage is None else self.stage


class FusedOptimizer(Optimizer):
    """Base class; subclasses implement ``_collect`` and ``_apply``."""

    # Keys that fusedoptim adds to torch's param group layout, with defaults
    # for state dicts saved by torch.optim or by older fusedoptim versions.
    _extra_group_defaults: dict[str, Any] = {
        "l1": 0.0,
        "max_grad_norm": None,
        "bf16_stochastic_round": False,
        "master_weights": False,
        "seed": 0,
    }

    # Whether params with a sparse grad (nn.Embedding(sparse=True)) are updated,
    # through ``_step_sparse``: torch.optim.SGD takes them, Adam/AdamW refuse them.
    _takes_sparse_grads = False

    # Whether large params keep their moments in 8-bit form (the *8bit
    # optimizers; see _state_precision.py): params of at least the group's
    # min_8bit_size elements, of any type but float64.
    _quantizes_state = False

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
        self.state = versioned(self.state)
        self._plans: dict[int, GroupPlan] = {}
        # torch.amp.GradScaler then hands us `grad_scale` and `found_inf` instead
        # of unscaling the grads in a separate pass (see _grad_scaling).
        self._step_supports_amp_scaling = True

    def _patch_step_function(self) -> None:
        """torch wraps ``type(self).step`` once per class with its step hooks;
        the hooked step is then made opaque to torch.compile as a whole, so a
        compiled training step breaks once at ``opt.step()`` and traces neither
        the hooks nor the step (see [note: opaque to dynamo] in _opaque.py)."""
        super()._patch_step_function()
        cls = type(self)
        if not getattr(cls.step, "opaque_to_dynamo", False):
            hooked = cls.step
            cls.step = opaque_to_dynamo(hooked)  # type: ignore[method-assign]
            cls.step.hooked = True  # type: ignore[attr-defined]
            cls.step.opaque_to_dynamo = True  # type: ignore[attr-defined]

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
        if not isinstance(self.state, VersionedState):
            # `opt.state = defaultdict(dict)`, a common way to reset the state:
            # the plans cannot tell that mapping's changes, so they start over.
            self.state = versioned(self.state)
            self._plans = {}
        work = [self._prepare(index, group) for index, group in enumerate(self.param_groups)]
        grad_unscale, skip = self._grad_scaling()
        if skip:
            # As torch.optim without a fused kernel, where GradScaler does not
            # call step() at all: no write, and no state created (an SGD
            # momentum buffer is only filled by its first launched step).
            return loss
        clips = self._clip_coefficients(work, grad_unscale)
        for index, (group, prepared) in enumerate(zip(self.param_groups, work)):
            if prepared is not None:
                scaling = {"grad_unscale": grad_unscale, "grad_clip": clips.get(index, 1.0)}
                self._run(index, group, *prepared, scaling=scaling)
        return loss

    def _grad_scaling(self) -> tuple[float, bool]:
        """(1 / scale, skip) from torch.amp.GradScaler's ``grad_scale`` / ``found_inf``.

        [note: GradScaler] GradScaler.step() sets these attributes on optimizers
        with ``_step_supports_amp_scaling``. The kernel multiplies each grad by
        1 / scale rounded to float32 exactly as ``GradScaler.unscale_`` rounds
        it, so results equal torch.optim with the same scaler. A step with
        inf/NaN grads writes no param and creates, changes or counts no state; it
        reads ``found_inf`` on the host, which on CUDA waits for the GPU once
        per step (as torch.optim's own non-fused GradScaler path does).
        """
        found_inf = getattr(self, "found_inf", None)
        grad_scale = getattr(self, "grad_scale", None)
        skip = found_inf is not None and float(found_inf) != 0.0
        if grad_scale is None:
            return 1.0, skip
        inv = torch.tensor(1.0 / float(grad_scale), dtype=torch.float64).float()
        return float(inv), skip

    def _clip_coefficients(self, work: list, grad_unscale: float) -> dict[int, float]:
        """max_grad_norm: one norm over the grads of every group that sets it.

        As ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` over those
        params: coefficient min(1, max_norm / (total_norm + 1e-6)) in float32.
        The norm is read before any write and applied inside the kernel, so
        clipping costs one read pass and no write pass.
        """
        indices = [
            index
            for index, group in enumerate(self.param_groups)
            if group.get("max_grad_norm") is not None and work[index] is not None
        ]
        if not indices:
            return {}
        grads = [g for index in indices for g in _grads_of(work[index])]
        total = _total_norm(grads) * grad_unscale
        coefficients = {}
        for index in indices:
            max_norm = float(self.param_groups[index]["max_grad_norm"])
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            coefficients[index] = float(coef)
        return coefficients

    def _prepare(self, index: int, group: dict[str, Any]) -> tuple | None:
        """Phase 1: (plan, grads, sparse items) on the fast path, (None, items) on
        the slow path."""
        check_group_hyperparameters(type(self).__name__, index, group, self._hyperparameter_keys)
        check_half_precision_group(f"{type(self).__name__}: param group {index}: ", group)
        if self._quantizes_state:
            check_quantization_group(f"param group {index} of {type(self).__name__}", group)
        plan = self._plans.get(index)
        if plan is not None:
            grads = plan.current_grads(group, self._structure(group), self.state)
            if grads is not None:
                outside = self._outside_items(index, group, plan)
                if outside is not None:
                    return plan, grads, outside
        items = self._collect(index, group)
        return (None, items) if items else None

    def _run(
        self,
        index: int,
        group: dict[str, Any],
        plan: GroupPlan | None,
        payload: list,
        outside: list[Item] = (),
        *,
        scaling: dict[str, float],
    ) -> None:
        """Phase 2: create state and a plan on the slow path, then launch."""
        if plan is None:
            self._run_unplanned(index, group, payload, scaling)
            return
        hyper = {**self._hyperparameters(group), **scaling}
        for batch in plan.batches:
            self._launch(batch, plan.watch, hyper)  # the grads it has just collected
        staged = [item for item in outside if not item.grad.is_sparse]
        if staged:
            self._create_state(group, staged)
            self._launch_items(group, staged, hyper)
        sparse = [item for item in outside if item.grad.is_sparse]
        if sparse:
            self._step_sparse(group, sparse, scaling["grad_unscale"])

    def _run_unplanned(
        self, index: int, group: dict[str, Any], items: list, scaling: dict[str, float]
    ) -> None:
        """The slow path's phase 2: create missing state, build a plan, launch.

        If anything here raises (memory for new state, a call refused for its
        device, a launch), the state this step added for params that no call
        has updated is removed again and the plan dropped, so the next step
        starts those params afresh instead of reading half-made state (an
        unfilled momentum buffer, an exp_avg without its exp_avg_sq). The
        kernels write their own bookkeeping (step counters, new-buffer flags)
        only once a launch has returned.
        """
        keys_before = {id(item.param): self._state_keys_now(item.param) for item in items}
        updated: set[int] = set()
        sparse = [item for item in items if item.grad.is_sparse]
        dense = [item for item in items if not item.grad.is_sparse]
        staged = [item for item in dense if item.stage is not None]
        in_place = [item for item in dense if item.stage is None]
        # A staged param whose memory interleaves with another param's keeps
        # the group on this path, where the calls run in list order.
        shared = shares_memory([real_view(item.param) for item in dense])
        plannable = not any(item.stage is not None and s for item, s in zip(dense, shared))
        hyper = {**self._hyperparameters(group), **scaling}
        try:
            self._create_state(group, dense)
            plan = None
            if plannable:
                plan = GroupPlan.build(
                    group,
                    self._structure(group),
                    [item.param for item in in_place],
                    self.state,
                    self._state_keys(group),
                    outside=[item.param for item in [*staged, *sparse]],
                )
            if plan is None:
                self._plans.pop(index, None)
                self._launch_items(group, dense, hyper, done=updated)
            else:
                self._plans[index] = plan
                plan.batches = self._launch_items(group, in_place, hyper, done=updated)
                self._launch_items(group, staged, hyper, done=updated)
            if sparse:
                self._step_sparse(group, sparse, scaling["grad_unscale"])
                updated.update(id(item.param) for item in sparse)
        except BaseException:
            self._plans.pop(index, None)
            for item in items:
                if id(item.param) not in updated:
                    self._remove_state_keys_since(item.param, keys_before[id(item.param)])
            raise

    def _launch_items(
        self,
        group: dict[str, Any],
        items: list[Item],
        hyper: dict[str, Any],
        done: set[int] | None = None,
    ) -> list[Batch]:
        """Builds the calls for ``items`` (state created) and launches them in
        order, staged params copied in before their call and back after it;
        adds each updated param's id to ``done``. Returns the batches."""
        batches = self._batches(group, items) if items else []
        grads = [real_view(item.grad) for item in items]
        for batch in batches:
            staged = [items[i] for i in batch.positions if items[i].stage is not None]
            for item in staged:
                item.stage.copy_(item.param)
            self._launch(batch, [grads[i] for i in batch.positions], hyper)
            for item in staged:
                item.param.copy_(item.stage)
            if done is not None:
                done.update(id(items[i].param) for i in batch.positions)
        return batches

    def _state_keys_now(self, param: torch.Tensor) -> set[str] | None:
        return set(self.state[param]) if param in self.state else None

    def _remove_state_keys_since(self, param: torch.Tensor, keys_before: set[str] | None) -> None:
        if keys_before is None:
            self.state.pop(param, None)
            return
        entries = self.state.get(param, {})
        for key in set(entries) - keys_before:
            del entries[key]

    # What each optimizer defines.
    _hyperparameter_keys: tuple[str, ...] = ()  # must be finite numbers at every step

    def _structure(self, group: dict[str, Any]) -> tuple:
        """The group options that shape the state and the kernel variant."""
        raise NotImplementedError

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The per-param state entries the kernel reads (checked by identity each step)."""
        raise NotImplementedError

    def _collect(self, group_index: int, group: dict[str, Any]) -> list[Item]:
        """The slow path's checks: every param with a grad, with its state."""
        label = param_labeller(self, group_index, group)
        items: list[Item] = []
        device = None
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            name = label(i)
            check_single_device(name, p, device)
            device = p.device
            items.append(self._checked_item(name, p, p.grad, group))
        return items

    def _outside_items(
        self, group_index: int, group: dict[str, Any], plan: GroupPlan
    ) -> list[Item] | None:
        """The plan's params left outside it (a sparse grad, or staged: see
        [note: staged params]), checked as ``_collect`` checks them; None when
        one of them has no grad or now belongs in the plan (the slow path
        decides)."""
        if not plan.outside:
            return []
        label = param_labeller(self, group_index, group)
        device = plan.params[0].device if plan.params else None
        items = []
        for i, p in plan.outside:
            if p.grad is None:
                return None
            check_single_device(label(i), p, device)
            device = p.device
            item = self._checked_item(label(i), p, p.grad, group)
            if item.stage is None and not item.grad.is_sparse:
                return None
            items.append(item)
        return items

    def _checked_item(
        self, name: str, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
    ) -> Item:
        # Autograd can hand over a lazily conjugated or negated grad (the
        # backward of `p.conj()`, of `.imag`), whose memory is not its value;
        # torch.optim's ops resolve it, the kernels read memory.
        grad = grad.resolve_conj().resolve_neg()
        validate_common(name, p, group["l1"])
        if grad.is_sparse and self._takes_sparse_grads:
            return Item(p, grad, self._check_sparse_item(name, p, grad, group))
        check_half_precision_options(name, p, group)
        stage = staging_copy(name, p)
        updated = p if stage is None else stage
        grad = laid_out_like(grad, updated)
        existing, state_companions = self._existing_state(name, p, group, like=updated)
        companions = [("grad", real_view(grad)), *state_companions]
        if self._uses_master(p, group) and "master_param" in self.state.get(p, {}):
            # As the moments: a master loaded from another layout (a contiguous
            # model's state into a channels_last one) takes the param's.
            master = laid_out_like(self.state[p]["master_param"], updated)
            self.state[p]["master_param"] = master
            companions.append(("master_param", real_view(master)))
        _validation.check_tensors(
            name,
            real_view(updated),
            companions,
            mixed_grads=True,
            state_dtype=torch.float32 if self._uses_master(p, group) else None,
        )
        return Item(p, grad, existing, stage)

    # [note: half-precision options] bf16_stochastic_round rounds each updated
    # bf16 param up or down with probability proportional to its distance,
    # with counter-based random bits (csrc/ops/random.h) keyed by the group's
    # seed, the param's position in the optimizer and its step. master_weights
    # keeps an fp32 copy of each fp16/bf16 param in its state ("master_param",
    # with fp32 moments), updates it in fp32 and writes the param rounded to
    # nearest from it in the same pass. Other params are unaffected by either.
    def _uses_master(self, p: torch.Tensor, group: dict[str, Any]) -> bool:
        return bool(group.get("master_weights")) and p.dtype in HALF_DTYPES

    def _rounds_stochastically(self, p: torch.Tensor, group: dict[str, Any]) -> bool:
        return bool(group.get("bf16_stochastic_round")) and p.dtype == torch.bfloat16

    def _state_dtype(self, p: torch.Tensor, group: dict[str, Any]) -> torch.dtype:
        """The dtype of a param's float moments: fp32 under master weights,
        else the param's (complex for a complex param, as in torch.optim)."""
        return torch.float32 if self._uses_master(p, group) else p.dtype

    def _master_for(self, p: torch.Tensor, group: dict[str, Any]) -> torch.Tensor | None:
        """The param's fp32 master, created from the param when missing (the
        first step, or a state dict saved without master weights)."""
        if not self._uses_master(p, group):
            # A master left from steps with the option on goes stale as this
            # step updates the param without it; turned back on, it would
            # overwrite the param with old values.
            self.state.get(p, {}).pop("master_param", None)
            return None
        state = self.state[p]
        if "master_param" not in state:
            master = torch.empty_like(p, dtype=torch.float32, memory_format=torch.preserve_format)
            state["master_param"] = master.copy_(p.detach())
        return state["master_param"]

    def _state_tensors_as(self, state: dict, keys: tuple[str, ...], dtype: torch.dtype) -> None:
        """Float moments in ``dtype`` (fp32 under master weights; the param's
        otherwise, as torch.optim keeps them), converted where they are not."""
        for key in keys:
            value = state.get(key)
            if (
                isinstance(value, torch.Tensor)
                and value.is_floating_point()
                and value.dtype != dtype
            ):
                state[key] = value.to(dtype)

    def _call_precision(
        self, group: dict[str, Any], items: list[Item], positions: list[int]
    ) -> tuple[list[torch.Tensor], _backend.Precision, bool]:
        """For one fused call: the tensors its kernel updates as params (the
        params, or their fp32 masters), its Precision and whether it rounds
        stochastically."""
        first = items[positions[0]].param
        updated = [real_view(items[i].updated) for i in positions]
        masters = [self._master_for(items[i].param, group) for i in positions]
        params = [real_view(m) for m in masters] if masters[0] is not None else updated
        grad_dtype = real_view(items[positions[0]].grad).dtype
        stochastic = self._rounds_stochastically(first, group)
        streams: list[int] = []
        if stochastic:
            # A param's stream of random bits: its index in state_dict order.
            index_of = {
                id(q): index
                for index, q in enumerate(q for g in self.param_groups for q in g["params"])
            }
            streams = [index_of[id(items[i].param)] for i in positions]
        precision = _backend.Precision(
            grad_dtype=grad_dtype if grad_dtype != params[0].dtype else None,
            param_copies=updated if masters[0] is not None else (),
            streams=streams,
        )
        return params, precision, stochastic

    def _existing_state(
        self, name: str, p: torch.Tensor, group: dict[str, Any], like: torch.Tensor
    ) -> tuple:
        """(state the step reads or None, [(role, tensor)] to check against the
        param); state tensors are laid out ``like`` the tensor the kernel
        updates (the param, or its stage)."""
        raise NotImplementedError

    def _check_sparse_item(
        self, name: str, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]
    ) -> Any:
        """The slow path's checks for a param whose grad is sparse; returns its
        existing state (as ``_existing_state``). Only with ``_takes_sparse_grads``."""
        raise NotImplementedError

    def _step_sparse(self, group: dict[str, Any], items: list[Item], grad_unscale: float) -> None:
        """Phase 2 for the params whose grad is sparse (after the fused calls)."""
        raise NotImplementedError

    def _create_state(self, group: dict[str, Any], items: list[Any]) -> None:
        raise NotImplementedError

    def _batches(self, group: dict[str, Any], items: list[Any]) -> list[Batch]:
        raise NotImplementedError

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _launch(self, batch: Batch, grads: _backend.Grads, hyper: dict[str, Any]) -> None:
        """One fused call; ``grads``: the batch's grads in order, or the plan's GradWatch."""
        raise NotImplementedError

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = versioned(self.state)
        self._plans = {}
        for group in self.param_groups:
            for key, value in self._extra_group_defaults.items():
                group.setdefault(key, value)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a fusedoptim or torch.optim state dict, of either state precision.

        Group options missing from the saved dict (``l1`` in a torch.optim
        state dict, keys newer than the saving version) keep this optimizer's
        current values instead of falling back to defaults. The precision is
        this optimizer's, whatever the saved dict's: each param's moments take
        the form this optimizer keeps for it (8-bit moments are dequantized by
        the float-state optimizers, float moments quantized by the 8-bit ones;
        see [note: 8-bit state layout]), and its ``master_weights`` and
        ``bf16_stochastic_round`` stay as they are (masters are started from
        the params, or dropped). The ``seed``, like the hyperparameters, is
        the saved one, so a resumed run draws the same bits.
        """
        state_dict = dict(state_dict)
        saved_groups = [dict(g) for g in state_dict["param_groups"]]
        for saved, current in zip(saved_groups, self.param_groups):
            for key, value in current.items():
                if key not in ("params", "param_names"):
                    saved.setdefault(key, value)
            for key in ("master_weights", "bf16_stochastic_round"):
                saved[key] = current[key]
        state_dict["param_groups"] = saved_groups
        if self._quantizes_state:
            for index, group in enumerate(saved_groups):
                check_quantization_group(f"saved param group {index}", group)
        state_dict, uncast = take_uncast(state_dict)
        # The conversions below can still refuse a tensor (a moment of the
        # wrong shape): a refused load leaves the optimizer as it was, as
        # torch.optim's load does, not half-converted.
        state, groups = self.state, self.param_groups
        super().load_state_dict(state_dict)
        try:
            self._convert_loaded_state(saved_groups, uncast)
        except BaseException:
            self.__setstate__({"state": state, "param_groups": groups})
            raise

    def _convert_loaded_state(self, saved_groups: list[dict], uncast: dict) -> None:
        """Each loaded param's moments in the form this optimizer keeps for it."""
        saved_ids = iter([index for group in saved_groups for index in group["params"]])
        for group in self.param_groups:
            block_size = group.get("block_size", DEFAULT_BLOCK_SIZE)
            if not self._quantizes_state:
                for key in GROUP_KEYS:
                    group.pop(key, None)
            for p in group["params"]:
                taken = uncast.get(next(saved_ids, None))
                if taken is None and p not in self.state:
                    continue
                entry = self.state[p]
                entry.update({key: value.to(p.device) for key, value in (taken or {}).items()})
                if "master_param" in entry and not self._uses_master(p, group):
                    # Saved with master weights, loaded without: the moments
                    # take the param's dtype, as torch.optim keeps them.
                    del entry["master_param"]
                    self._state_tensors_as(entry, tuple(MOMENT_KINDS), p.dtype)
                if is_quantized(entry) and not self._keeps_8bit(p, group):
                    dequantize_entry(entry, p, block_size, self._state_dtype(p, group))
                elif not is_quantized(entry) and self._keeps_8bit(p, group):
                    quantize_entry(entry, p, block_size)

    def _keeps_8bit(self, p: torch.Tensor, group: dict[str, Any]) -> bool:
        """Whether a param's moments take the 8-bit form (see _quantizes_state)."""
        return (
            self._quantizes_state
            and real_view(p).dtype != torch.float64
            and p.numel() >= group["min_8bit_size"]
        )

    def _block_size(self, group: dict[str, Any], name: str) -> int:
        block_size = group.get("block_size")
        if block_size is None:
            raise ValueError(
                f"{name}: the state holds 8-bit moments, which {type(self).__name__} does not "
                "keep; load them through load_state_dict(), which converts them to float"
            )
        return block_size


def _grads_of(prepared: tuple) -> list[torch.Tensor]:
    plan, payload = prepared[:2]
    if plan is None:
        return [item.grad for item in payload]
    return [*payload, *(item.grad for item in prepared[2])]


def _total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm over all grads: one fused read pass on the CPU (fusedoptim.penalties)."""
    total = global_grad_norm(grads, 2.0)
    # FSDP2 grads are DTensors: the clip coefficient needs the global norm.
    return total.full_tensor() if hasattr(total, "full_tensor") else total


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


def staging_copy(label: str, param: torch.Tensor) -> torch.Tensor | None:
    """None when the kernels can update ``param``'s memory directly, else a
    dense tensor (uninitialized) to run its update in: see [note: staged
    params]. Laid out as torch.optim lays out such a param's state
    (``zeros_like(p, memory_format=torch.preserve_format)``), so the state
    needs no copy. Refuses a param with elements that share memory."""
    view = real_view(param)
    if view.layout != torch.strided or _validation.is_dense(view):
        return None
    _validation.check_no_self_overlap(label, view)
    return torch.empty_like(param, memory_format=torch.preserve_format)


def laid_out_like(t: Any, param: torch.Tensor) -> Any:
    """``t``, or a copy of it with ``param``'s strides when it holds the same
    shape, dtype and device in another layout.

    torch.optim's ops take any layout; the kernels walk one memory order for
    a param, its grad and its state. Such tensors come from ordinary code: a
    grad assigned by hand (transposed, expanded, a strided slice), a state
    loaded from a contiguous model into a channels_last one. Anything else is
    left for the checks to refuse by name.
    """
    if (
        not isinstance(t, torch.Tensor)
        or t.layout != torch.strided
        or (t.shape, t.device) != (param.shape, param.device)
        or t.is_complex() != param.is_complex()
        or _validation.same_layout(t, param)
        or not _validation.is_dense(param)
    ):
        return t
    return torch.empty_like(param, dtype=t.dtype).copy_(t)


def fused_calls(items: list[Item], key: Callable[[int], Any]) -> list[list[int]]:
    """Item positions grouped into fused calls by ``key(position)``: one call
    per key and overlap level, level by level, keys in first-seen order.

    Within one call every tensor is a different piece of memory, so no two
    threads ever write the same element. A param listed twice in one group
    (torch warns, then updates it twice in a row) or two overlapping views of
    one buffer get their updates from successive calls, in list order, each
    seeing the other's result, as in torch.optim (see _overlap.py).
    """
    levels = overlap_levels(
        [real_view(item.param) for item in items], owners=[item.param for item in items]
    )
    calls: dict[Any, list[int]] = {}
    for position, level in enumerate(levels):
        calls.setdefault((level, key(position)), []).append(position)
    return [calls[call] for call in sorted(calls, key=lambda call: call[0])]


def check_group_hyperparameters(kind: str, group_index: int, group: dict, keys: tuple) -> None:
    """Hyperparameters may be edited between steps (schedulers, users): each must
    still be a finite number when the step starts, before any group is written."""
    for key in keys:
        # betas may be a list in a group dict (torch makes it a tuple only in
        # its constructor; add_param_group and JSON-loaded groups keep lists).
        values = group[key] if isinstance(group[key], (tuple, list)) else (group[key],)
        for value in values:
            number = to_float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(
                    f"{kind}: param group {group_index} has non-finite {key} = {value}"
                )


HALF_DTYPES = (torch.float16, torch.bfloat16)


def half_precision_defaults(
    bf16_stochastic_round: bool, master_weights: bool, seed: int | None
) -> dict[str, Any]:
    """The constructor's half-precision options as group defaults (see
    [note: half-precision options]); ``seed=None`` takes ``torch.initial_seed()``,
    so ``torch.manual_seed`` before building the optimizer fixes the bits."""
    options = {
        "bf16_stochastic_round": bf16_stochastic_round,
        "master_weights": master_weights,
        "seed": torch.initial_seed() if seed is None else seed,
    }
    check_half_precision_group("", options)
    return options


def check_half_precision_group(where: str, group: dict[str, Any]) -> None:
    """The half-precision options of a group, in the constructor and again at
    each step's phase 1 (groups added or edited later), before any write."""
    for name in ("bf16_stochastic_round", "master_weights"):
        value = group.get(name, False)
        if not isinstance(value, bool):
            raise ValueError(f"{where}Invalid {name} value: {value!r} (expected True or False)")
    if group.get("bf16_stochastic_round") and group.get("master_weights"):
        raise ValueError(
            f"{where}bf16_stochastic_round and master_weights: choose one; the master weights "
            "keep every update in fp32 and the param is their rounding to nearest"
        )
    seed = group.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"{where}Invalid seed value: {seed!r} (expected an int in [0, 2**64))")


def check_half_precision_options(label: str, p: torch.Tensor, group: dict[str, Any]) -> None:
    if group.get("bf16_stochastic_round") and p.dtype == torch.float16:
        raise ValueError(
            f"{label}: bf16_stochastic_round rounds bfloat16 params; this param is float16 "
            "(its 10-bit mantissa and narrow range keep small updates better than bf16; use "
            "master_weights=True to keep every update)"
        )


def validate_common(label: str, param: torch.Tensor, l1: float) -> None:
    if param.is_complex() and l1 != 0:
        raise ValueError(f"{label}: l1 is not defined for complex params; use l1=0 for this group")
    if param.is_conj():
        # e.g. after `p.data = p.data.conj()`: its memory holds conj(p), and the
        # kernels update memory as it is (torch.optim.Adam refuses it too).
        raise ValueError(
            f"{label}: the param is a lazily conjugated view (is_conj() is True); "
            "make its memory hold its value with p.data = p.data.resolve_conj()"
        )


check_step_counter = _validation.check_step_counter
