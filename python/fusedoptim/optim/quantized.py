"""Adam8bit, AdamW8bit and SGD8bit: the fused optimizers with 8-bit state.

Each is its float-state counterpart whose large params keep their moments in
8 bits (see [note: 8-bit state] in csrc/ops/quant8.h and [note: 8-bit state
layout] in _state_precision.py): about 2 bytes of Adam state per param
instead of 8, 1 of SGD momentum instead of 4, in one fused pass that decodes,
updates and encodes each block. The names and the two extra options follow
bitsandbytes (``min_8bit_size``) and torchao (``block_size``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from fusedoptim.optim._base import FusedOptimizer
from fusedoptim.optim._state_precision import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MIN_8BIT_SIZE,
    check_block_size,
    check_min_8bit_size,
    check_quantization_group,
)
from fusedoptim.optim.adam import Adam
from fusedoptim.optim.sgd import SGD

_QUANTIZATION_ARGS = """
        block_size (int): elements per absmax scale, a power of two from 32 to
            4096 (default: 256, as bitsandbytes and torchao).
        min_8bit_size (int): params with fewer elements (biases, norms) keep
            float state, as in bitsandbytes (default: 4096)."""


class _QuantizedState(FusedOptimizer):
    """What the 8-bit optimizers add: two group options, validated per group."""

    _quantizes_state = True
    _extra_group_defaults = {
        **FusedOptimizer._extra_group_defaults,
        "block_size": DEFAULT_BLOCK_SIZE,
        "min_8bit_size": DEFAULT_MIN_8BIT_SIZE,
    }

    def _set_quantization_defaults(self, block_size: int, min_8bit_size: int) -> None:
        # Set before the base __init__ adds the first groups (add_param_group).
        check_block_size(block_size)
        check_min_8bit_size(min_8bit_size)
        self._quantization_defaults = {"block_size": block_size, "min_8bit_size": min_8bit_size}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key, value in self._quantization_defaults.items():
            param_group.setdefault(key, value)
        check_quantization_group("a param group", param_group)
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault(
            "_quantization_defaults",
            {key: self.defaults.get(key, self._extra_group_defaults[key]) for key in _KEYS},
        )


_KEYS = ("block_size", "min_8bit_size")


class Adam8bit(_QuantizedState, Adam):
    __doc__ = (
        """Adam with 8-bit moments; the arguments of :class:`fusedoptim.Adam`, plus:
"""
        + _QUANTIZATION_ARGS
    )

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
        block_size: int = DEFAULT_BLOCK_SIZE,
        min_8bit_size: int = DEFAULT_MIN_8BIT_SIZE,
        bf16_stochastic_round: bool = False,
        master_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        self._set_quantization_defaults(block_size, min_8bit_size)
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
            decoupled_weight_decay=decoupled_weight_decay,
            l1=l1,
            max_grad_norm=max_grad_norm,
            bf16_stochastic_round=bf16_stochastic_round,
            master_weights=master_weights,
            seed=seed,
        )
        self.defaults.update(self._quantization_defaults)


class AdamW8bit(Adam8bit):
    __doc__ = (
        """AdamW with 8-bit moments; the arguments of :class:`fusedoptim.AdamW`, plus:
"""
        + _QUANTIZATION_ARGS
    )

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
        block_size: int = DEFAULT_BLOCK_SIZE,
        min_8bit_size: int = DEFAULT_MIN_8BIT_SIZE,
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
            block_size=block_size,
            min_8bit_size=min_8bit_size,
            bf16_stochastic_round=bf16_stochastic_round,
            master_weights=master_weights,
            seed=seed,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class SGD8bit(_QuantizedState, SGD):
    __doc__ = (
        """SGD with an 8-bit momentum buffer; the arguments of :class:`fusedoptim.SGD`, plus:
"""
        + _QUANTIZATION_ARGS
    )

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
        block_size: int = DEFAULT_BLOCK_SIZE,
        min_8bit_size: int = DEFAULT_MIN_8BIT_SIZE,
        bf16_stochastic_round: bool = False,
        master_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        self._set_quantization_defaults(block_size, min_8bit_size)
        super().__init__(
            params,
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
            l1=l1,
            max_grad_norm=max_grad_norm,
            bf16_stochastic_round=bf16_stochastic_round,
            master_weights=master_weights,
            seed=seed,
        )
        self.defaults.update(self._quantization_defaults)
