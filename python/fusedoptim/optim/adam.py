"""Adam and AdamW with a fused step (``torch.optim.Adam``/``AdamW`` drop-ins)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import _get_scalar_dtype, _to_scalar

from fusedoptim import _backend
from fusedoptim.optim._base import (
    Batch,
    FusedOptimizer,
    Item,
    check_step_counter,
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

MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


class Adam(FusedOptimizer):
    r"""Adam with a fused step; same arguments, defaults and state as ``torch.optim.Adam``.

    One call updates every param of a group (per dtype), reading and writing
    each byte once. Results follow ``torch.optim.Adam(foreach=False)`` to a
    few ulp.

    Args:
        params: iterable of parameters, named parameters or param groups.
        lr (float or Tensor): learning rate (default: 1e-3).
        betas (tuple of float or Tensor): coefficients for the running averages of
            the gradient and its square (default: (0.9, 0.999)).
        eps (float): added to the denominator (default: 1e-8).
        weight_decay (float): L2 penalty, added to the gradient (coupled), as in
            torch.optim.Adam (default: 0).
        amsgrad (bool): use the AMSGrad variant (default: False).
        maximize (bool): maximize the objective (default: False).
        l1 (float): fusedoptim only. After the update, the decoupled proximal step
            ``p <- sign(p) * max(|p| - lr * l1, 0)``, which produces exact zeros
            (default: 0).
        max_grad_norm (float, optional): fusedoptim only. Clip the gradients as
            ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm)`` would, over
            the params of every group that sets it, inside the step (one extra
            read pass for the norm, no extra write pass; default: None).
        decoupled_weight_decay (bool): True makes this AdamW (default: False).
        bf16_stochastic_round (bool): fusedoptim only (torchao's name). bf16 params
            are rounded up or down with probability proportional to the distance,
            with reproducible counter-based random bits; float16 params are refused
            (default: False).
        master_weights (bool): fusedoptim only. fp16/bf16 params keep an fp32 copy
            ("master_param") and fp32 moments in their state, updated in fp32; the
            param is written rounded to nearest from it (default: False).
        seed (int, optional): the stochastic rounding's seed, a param group option
            saved in the state dict (default: ``torch.initial_seed()``).
        foreach, fused: accepted for drop-in compatibility; no effect (the step is
            always fused).
        capturable, differentiable: not supported; True raises ``ValueError``.
    """

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        l1: float = 0.0,
        max_grad_norm: float | None = None,
        bf16_stochastic_round: bool = False,
        master_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        # torch.optim.Adam's checks and messages, in torch's order.
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not (
            (isinstance(betas[0], float) and isinstance(betas[1], float))
            or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor))
        ):
            raise ValueError("betas must be either both floats or both Tensors")
        for index, beta in enumerate(betas):
            if isinstance(beta, Tensor) and beta.numel() != 1:
                raise ValueError(f"Tensor betas[{index}] must be 1-element")
        if not 0.0 <= l1:
            raise ValueError(f"Invalid l1 value: {l1}")
        if max_grad_norm is not None and not max_grad_norm > 0.0:
            raise ValueError(f"Invalid max_grad_norm value: {max_grad_norm}")
        defaults = {
            "lr": lr,
            "betas": tuple(map(_to_scalar, betas)),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
            "l1": l1,
            "max_grad_norm": max_grad_norm,
            **half_precision_defaults(bf16_stochastic_round, master_weights, seed),
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("fused", None)
            group.setdefault("decoupled_weight_decay", False)
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and "step" in p_state:
                    p_state["step"] = _host_step_counter(p_state["step"])

    def _existing_state(self, name: str, p: Tensor, group: dict[str, Any], like: Tensor) -> tuple:
        state = self.state.get(p) or None
        if state is None:
            return None, []
        quantized = is_quantized(state)
        moments = ("exp_avg", "exp_avg_sq")
        for key in ("step", *(codes_key(m) if quantized else m for m in moments)):
            if key not in state:
                raise KeyError(f"{name}: optimizer state has no '{key}'")
        check_step_counter(state["step"], name)
        if quantized:
            present = [m for m in MOMENTS if codes_key(m) in state]
            for moment in present if group["amsgrad"] else moments:
                check_codes(name, like, moment, state, self._block_size(group, name))
            return state, []
        self._state_tensors_as(state, MOMENTS, self._state_dtype(p, group))
        for key in MOMENTS:
            if key in state:
                # Only the layout changes, never a value, so a step refused
                # later still loses nothing.
                state[key] = laid_out_like(state[key], like)
        companions = [
            ("exp_avg", real_view(state["exp_avg"])),
            ("exp_avg_sq", real_view(state["exp_avg_sq"])),
        ]
        if group["amsgrad"] and "max_exp_avg_sq" in state:
            companions.append(("max_exp_avg_sq", real_view(state["max_exp_avg_sq"])))
        return state, companions

    _hyperparameter_keys = ("lr", "betas", "eps", "weight_decay", "l1")

    def _structure(self, group: dict[str, Any]) -> tuple:
        flags = (group.get("bf16_stochastic_round"), group.get("master_weights"))
        return (bool(group["amsgrad"]), *flags, *(group.get(key) for key in GROUP_KEYS))

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        moments = MOMENTS if group["amsgrad"] else MOMENTS[:2]
        keys = ("step", *moments)
        if self._quantizes_state:
            keys += tuple(k for m in moments for k in (codes_key(m), absmax_key(m)))
        if group.get("master_weights"):
            keys += ("master_param",)
        return keys

    def _create_state(self, group: dict[str, Any], items: list[Item]) -> None:
        for item in items:
            self._state_for(item.param, group)

    def _batches(self, group: dict[str, Any], items: list[Item]) -> list[Batch]:
        amsgrad = group["amsgrad"]
        moments = MOMENTS if amsgrad else MOMENTS[:2]
        states = [self.state[item.param] for item in items]
        forms = [is_quantized(state) for state in states]

        def key(position: int) -> tuple:
            item, state = items[position], states[position]
            dtypes = real_view(item.param).dtype, real_view(item.grad).dtype, state["step"].dtype
            return *dtypes, forms[position], "master_param" in state

        batches = []
        for positions in fused_calls(items, key):
            params, precision, stochastic = self._call_precision(group, items, positions)
            chosen = [states[i] for i in positions]
            steps = [s["step"] for s in chosen]
            if forms[positions[0]]:
                pairs = [[(s[codes_key(m)], s[absmax_key(m)]) for s in chosen] for m in moments]
                call = _backend.adam8bit_call(
                    params,
                    *pairs[:2],
                    pairs[2] if amsgrad else [],
                    steps,
                    self._block_size(group, "Adam8bit"),
                    grad_positions=positions,
                    precision=precision,
                )
            else:
                floats = [[real_view(s[m]) for s in chosen] for m in moments]
                call = _backend.adam_call(
                    params,
                    *floats[:2],
                    floats[2] if amsgrad else [],
                    steps,
                    grad_positions=positions,
                    precision=precision,
                )
            batches.append(Batch(positions, call, stochastic))
        return batches

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return {
            "lr": to_float(group["lr"]),
            "beta1": to_float(beta1),
            "beta2": to_float(beta2),
            "eps": float(group["eps"]),
            "weight_decay": to_float(group["weight_decay"]),
            "l1": float(group["l1"]),
            "decoupled_weight_decay": bool(group["decoupled_weight_decay"]),
            "amsgrad": bool(group["amsgrad"]),
            "maximize": bool(group["maximize"]),
            "seed": int(group["seed"]),
        }

    def _launch(self, batch: Batch, grads: _backend.Grads, hyper: dict[str, Any]) -> None:
        _backend.adam_step(batch.call, grads, stochastic_round=batch.stochastic_round, **hyper)

    def _state_for(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        quantized = is_quantized(state) if state else self._keeps_8bit(p, group)
        moments = MOMENTS if group["amsgrad"] else MOMENTS[:2]
        if not state:
            # torch keeps `step` on the CPU (note: [special device hosting for
            # step]); the host reads it to compute the bias corrections.
            state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
        dtype = torch.float32 if self._uses_master(p, group) else p.dtype
        for moment in moments:
            if quantized and codes_key(moment) not in state:
                codes, absmax = new_codes(p, group["block_size"])
                state[codes_key(moment)], state[absmax_key(moment)] = codes, absmax
            elif not quantized and moment not in state:
                state[moment] = torch.zeros_like(
                    p, dtype=dtype, memory_format=torch.preserve_format
                )
        return state


class AdamW(Adam):
    r"""AdamW with a fused step; same arguments, defaults and state as ``torch.optim.AdamW``.

    Weight decay is decoupled: ``p <- p * (1 - lr * weight_decay)`` before the
    Adam update (default weight_decay=1e-2). ``l1`` adds the decoupled proximal
    L1 step after the update. See :class:`fusedoptim.Adam` for the arguments.
    """

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        l1: float = 0.0,
        max_grad_norm: float | None = None,
        bf16_stochastic_round: bool = False,
        master_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            l1=l1,
            max_grad_norm=max_grad_norm,
            bf16_stochastic_round=bf16_stochastic_round,
            master_weights=master_weights,
            seed=seed,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _host_step_counter(step: Any) -> Tensor:
    """A step counter as the kernels read it: a 0-dim float CPU tensor.

    Old state dicts store a Python number; torch.optim's fused/capturable
    state dicts keep it on the param's device. Both become what torch.optim's
    default path keeps (note: [special device hosting for step]).
    """
    if not isinstance(step, Tensor):
        return torch.tensor(float(step), dtype=_get_scalar_dtype())
    if step.device.type != "cpu" or step.dtype not in (torch.float32, torch.float64):
        return step.detach().to(device="cpu", dtype=_get_scalar_dtype()).reshape(())
    return step
