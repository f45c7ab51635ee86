"""SGD with a fused step (a ``torch.optim.SGD`` drop-in)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.sgd import sgd as torch_sgd

from fusedoptim import _backend
from fusedoptim.optim._base import (
    Batch,
    FusedOptimizer,
    Item,
    fused_calls,
    half_precision_defaults,
    laid_out_like,
    real_view,
    to_float,
)
from fusedoptim.optim._state_precision import (
    GROUP_KEYS,
    absmax_key,
    check_codes,
    codes_key,
    is_quantized,
    new_codes,
)

BUFFER = "momentum_buffer"


class SGD(FusedOptimizer):
    r"""SGD with a fused step; same arguments, defaults and state as ``torch.optim.SGD``.

    Momentum, dampening, Nesterov momentum, coupled L2 ``weight_decay`` and
    ``maximize`` follow ``torch.optim.SGD(foreach=False)`` to a few ulp; with
    ``momentum=0`` no per-param state is kept.

    Params with a sparse grad (``nn.Embedding(sparse=True)``) are updated as
    torch.optim.SGD updates them, by torch's own single-tensor SGD (there is
    no sparse kernel), with a sparse momentum buffer as torch keeps it; as in
    torch, their group needs ``weight_decay=0``, and ``l1`` and
    ``max_grad_norm`` are refused for them.

    Args:
        params: iterable of parameters, named parameters or param groups.
        lr (float or Tensor): learning rate (default: 1e-3).
        momentum (float): momentum factor (default: 0).
        dampening (float): dampening for momentum (default: 0).
        weight_decay (float or Tensor): L2 penalty, added to the gradient (default: 0).
        nesterov (bool): Nesterov momentum (default: False).
        maximize (bool): maximize the objective (default: False).
        l1 (float): fusedoptim only. After the update, the decoupled proximal step
            ``p <- sign(p) * max(|p| - lr * l1, 0)``, which produces exact zeros
            (default: 0).
        max_grad_norm (float, optional): fusedoptim only. Clip the gradients as
            ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm)`` would, over
            the params of every group that sets it, inside the step (one extra
            read pass for the norm, no extra write pass; default: None).
        bf16_stochastic_round, master_weights, seed: as in :class:`fusedoptim.Adam`;
            with stochastic rounding each bf16 param also keeps a ``step`` count
            in its state (torch's SGD counts none), which keys the random bits.
        foreach, fused: accepted for drop-in compatibility; no effect.
        differentiable: not supported; True raises ``ValueError``.
    """

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        l1: float = 0.0,
        max_grad_norm: float | None = None,
        bf16_stochastic_round: bool = False,
        master_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        # torch.optim.SGD's checks and messages, in torch's order.
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= l1:
            raise ValueError(f"Invalid l1 value: {l1}")
        if max_grad_norm is not None and not max_grad_norm > 0.0:
            raise ValueError(f"Invalid max_grad_norm value: {max_grad_norm}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
            "l1": l1,
            "max_grad_norm": max_grad_norm,
            **half_precision_defaults(bf16_stochastic_round, master_weights, seed),
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    _takes_sparse_grads = True

    def _check_sparse_item(self, name: str, p: Tensor, grad: Tensor, group: dict[str, Any]) -> Any:
        if is_quantized(self.state.get(p, {})):
            raise ValueError(
                f"{name}: grad is sparse but the momentum buffer is 8-bit (the param had dense "
                "grads before); torch's sparse SGD step needs a float buffer"
            )
        for key, allowed, why in [
            ("weight_decay", 0, "torch.optim.SGD cannot add a dense param to a sparse grad"),
            ("l1", 0, "the proximal step is dense"),
            ("max_grad_norm", None, "the norm is taken over dense grads"),
        ]:
            if group[key] != allowed:
                raise ValueError(
                    f"{name}: grad is sparse, which needs {key}={allowed} in its param group "
                    f"({why}); got {key}={group[key]}"
                )
        for option, applies in [
            ("bf16_stochastic_round", self._rounds_stochastically(p, group)),
            ("master_weights", self._uses_master(p, group)),
        ]:
            if applies:
                # torch's sparse step rounds to nearest and keeps no master:
                # the option would be silently dropped for this param.
                raise ValueError(
                    f"{name}: grad is sparse, which needs {option}=False for this {p.dtype} "
                    "param (torch's sparse SGD step updates it in place, to nearest)"
                )
        buffer = self.state.get(p, {}).get("momentum_buffer") if group["momentum"] != 0 else None
        for role, t in [("grad", grad), ("momentum_buffer", buffer)]:
            if t is not None and (t.shape, t.dtype, t.device) != (p.shape, p.dtype, p.device):
                raise ValueError(
                    f"{name}: {role} has shape {tuple(t.shape)}, dtype {t.dtype} on {t.device}, "
                    f"but the param has shape {tuple(p.shape)}, dtype {p.dtype} on {p.device}"
                )
        if group["nesterov"] and buffer is not None and not buffer.is_sparse:
            # torch.optim.SGD would fail half-way through its step (add(sparse, dense)).
            raise ValueError(
                f"{name}: grad is sparse but its momentum_buffer is dense (the param had dense "
                "grads before); Nesterov momentum cannot add the two"
            )
        return buffer

    def _step_sparse(self, group: dict[str, Any], items: list[Item], grad_unscale: float) -> None:
        grads = [item.grad for item in items]
        if grad_unscale != 1.0:
            # As GradScaler.unscale_ does for sparse grads: fp16 ones are
            # coalesced first, then the values are multiplied by 1 / scale.
            grads = [
                (g.coalesce() if g.dtype == torch.float16 else g) * grad_unscale for g in grads
            ]
        buffers = [item.existing for item in items]
        torch_sgd(
            [item.param for item in items],
            grads,
            buffers,
            has_sparse_grad=True,
            foreach=False,
            weight_decay=0.0,
            momentum=group["momentum"],
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
        if group["momentum"] != 0:
            for item, buffer in zip(items, buffers):
                self.state[item.param]["momentum_buffer"] = buffer

    def _existing_state(self, name: str, p: Tensor, group: dict[str, Any], like: Tensor) -> tuple:
        """The momentum buffer, or None (no momentum, or the buffer starts this step)."""
        if group["momentum"] == 0:
            return None, []
        state = self.state.get(p)
        if state and is_quantized(state):
            check_codes(name, like, "momentum_buffer", state, self._block_size(group, name))
            return state, []
        if state:
            self._state_tensors_as(state, (BUFFER,), self._state_dtype(p, group))
        buffer = state.get("momentum_buffer") if state else None
        if buffer is None:
            return None, []
        if buffer.is_sparse:
            raise ValueError(
                f"{name}: momentum_buffer is sparse (from sparse grads) but the grad is dense; "
                "torch.optim.SGD cannot add a dense grad to a sparse buffer either"
            )
        # Only the layout changes, never a value (see laid_out_like).
        buffer = state["momentum_buffer"] = laid_out_like(buffer, like)
        return buffer, [("momentum_buffer", real_view(buffer))]

    _hyperparameter_keys = ("lr", "momentum", "dampening", "weight_decay", "l1")

    def _structure(self, group: dict[str, Any]) -> tuple:
        flags = (group.get("bf16_stochastic_round"), group.get("master_weights"))
        return (group["momentum"] != 0, *flags, *(group.get(key) for key in GROUP_KEYS))

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        # Without momentum and the half-precision options there is no state at
        # all (as in torch.optim.SGD).
        keys: tuple[str, ...] = ()
        if group["momentum"] != 0:
            keys = (BUFFER, codes_key(BUFFER), absmax_key(BUFFER))
            keys = keys if self._quantizes_state else keys[:1]
        if group.get("bf16_stochastic_round"):
            keys += ("step",)
        if group.get("master_weights"):
            keys += ("master_param",)
        return keys

    def _create_state(self, group: dict[str, Any], items: list[Item]) -> None:
        for item in items:
            if (
                self._rounds_stochastically(item.param, group)
                and "step" not in self.state[item.param]
            ):
                # The count that keys the random bits (torch's SGD keeps none).
                self.state[item.param]["step"] = torch.tensor(0.0)
        if group["momentum"] == 0:
            return
        for item in items:
            if item.existing is not None:
                continue
            # Filled by the kernel: torch starts the buffer as a copy of the
            # (decayed) gradient, which is exactly what the first step writes.
            state = self.state[item.param]
            if self._keeps_8bit(item.param, group):
                codes, absmax = new_codes(item.param, group["block_size"])
                state[codes_key(BUFFER)], state[absmax_key(BUFFER)] = codes, absmax
            else:
                state[BUFFER] = torch.empty_like(
                    item.param,
                    dtype=self._state_dtype(item.param, group),
                    memory_format=torch.preserve_format,
                )

    def _batches(self, group: dict[str, Any], items: list[Item]) -> list[Batch]:
        has_momentum = group["momentum"] != 0
        states = [self.state.get(item.param, {}) for item in items]
        forms = [has_momentum and is_quantized(state) for state in states]

        def key(position: int) -> tuple:
            item = items[position]
            dtypes = real_view(item.param).dtype, real_view(item.grad).dtype
            return *dtypes, forms[position], self._uses_master(item.param, group)

        batches = []
        for positions in fused_calls(items, key):
            chosen = [items[i] for i in positions]
            params, precision, stochastic = self._call_precision(group, items, positions)
            steps = [states[i]["step"] for i in positions] if stochastic else []
            new_buffers = [item.existing is None for item in chosen]
            if forms[positions[0]]:
                buffers = [
                    (states[i][codes_key(BUFFER)], states[i][absmax_key(BUFFER)]) for i in positions
                ]
                call = _backend.sgd8bit_call(
                    params,
                    buffers,
                    new_buffers,
                    self._block_size(group, "SGD8bit"),
                    grad_positions=positions,
                    precision=precision,
                    steps=steps,
                )
            else:
                buffers = [real_view(states[i][BUFFER]) for i in positions] if has_momentum else []
                call = _backend.sgd_call(
                    params,
                    buffers,
                    new_buffers,
                    grad_positions=positions,
                    precision=precision,
                    steps=steps,
                )
            batches.append(Batch(positions, call, stochastic))
        return batches

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "lr": to_float(group["lr"]),
            "momentum": to_float(group["momentum"]),
            "dampening": to_float(group["dampening"]),
            "weight_decay": to_float(group["weight_decay"]),
            "l1": float(group["l1"]),
            "nesterov": bool(group["nesterov"]),
            "maximize": bool(group["maximize"]),
            "seed": int(group["seed"]),
        }

    def _launch(self, batch: Batch, grads: _backend.Grads, hyper: dict[str, Any]) -> None:
        _backend.sgd_step(batch.call, grads, stochastic_round=batch.stochastic_round, **hyper)
