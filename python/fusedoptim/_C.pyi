"""Type stub for the native extension (csrc/bindings/). Use fusedoptim._backend instead."""

from typing import Any

class CallPrecision:
    def __init__(
        self,
        *,
        grad_dtype: int = -1,
        state_dtype: int = -1,
        param_copies: list[int] = ...,
        copy_dtype: int = -1,
        streams: list[int] = ...,
    ) -> None: ...

class AdamCall:
    device: int
    def __init__(
        self,
        *,
        dtype: int,
        numels: list[int],
        params: list[int],
        exp_avgs: list[int],
        exp_avg_sqs: list[int],
        max_exp_avg_sqs: list[int],
        steps: list[int],
        step_dtype: int,
        device: int = -1,
        grad_positions: list[int] = ...,
        precision: CallPrecision = ...,
    ) -> None: ...

class SgdCall:
    device: int
    def __init__(
        self,
        *,
        dtype: int,
        numels: list[int],
        params: list[int],
        momentum_buffers: list[int],
        new_buffers: list[bool],
        device: int = -1,
        grad_positions: list[int] = ...,
        precision: CallPrecision = ...,
        steps: list[int] = ...,
        step_dtype: int = 0,
    ) -> None: ...

class GradWatch:
    grad_addresses: list[int]
    def __init__(
        self,
        group_params: list[Any],
        has_grad: list[bool],
        outside: list[bool],
        param_addresses: list[int],
        dtypes: list[Any],
        numels: list[int],
        is_complex: list[bool],
        device: int,
    ) -> None: ...
    def collect(self, group_params: list[Any]) -> list[Any] | None: ...

def adam_step(
    call: AdamCall,
    grads: list[int] | GradWatch,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    l1: float,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
    grad_unscale: float = 1.0,
    grad_clip: float = 1.0,
    num_threads: int,
    stream: int = 0,
    stochastic_round: bool = False,
    seed: int = 0,
) -> None: ...
def sgd_step(
    call: SgdCall,
    grads: list[int] | GradWatch,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    l1: float,
    nesterov: bool,
    maximize: bool,
    grad_unscale: float = 1.0,
    grad_clip: float = 1.0,
    num_threads: int,
    stream: int = 0,
    stochastic_round: bool = False,
    seed: int = 0,
) -> None: ...

class Adam8bitCall:
    device: int
    def __init__(
        self,
        *,
        dtype: int,
        block_size: int,
        numels: list[int],
        params: list[int],
        exp_avg_codes: list[int],
        exp_avg_absmax: list[int],
        exp_avg_sq_codes: list[int],
        exp_avg_sq_absmax: list[int],
        max_exp_avg_sq_codes: list[int],
        max_exp_avg_sq_absmax: list[int],
        steps: list[int],
        step_dtype: int,
        device: int = -1,
        grad_positions: list[int] = ...,
        precision: CallPrecision = ...,
    ) -> None: ...

class Sgd8bitCall:
    device: int
    def __init__(
        self,
        *,
        dtype: int,
        block_size: int,
        numels: list[int],
        params: list[int],
        momentum_buffer_codes: list[int],
        momentum_buffer_absmax: list[int],
        new_buffers: list[bool],
        device: int = -1,
        grad_positions: list[int] = ...,
        precision: CallPrecision = ...,
        steps: list[int] = ...,
        step_dtype: int = 0,
    ) -> None: ...

def adam8bit_step(
    call: Adam8bitCall,
    grads: list[int] | GradWatch,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    l1: float,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
    grad_unscale: float = 1.0,
    grad_clip: float = 1.0,
    num_threads: int,
    stream: int = 0,
    stochastic_round: bool = False,
    seed: int = 0,
) -> None: ...
def sgd8bit_step(
    call: Sgd8bitCall,
    grads: list[int] | GradWatch,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    l1: float,
    nesterov: bool,
    maximize: bool,
    grad_unscale: float = 1.0,
    grad_clip: float = 1.0,
    num_threads: int,
    stream: int = 0,
    stochastic_round: bool = False,
    seed: int = 0,
) -> None: ...
def quantize_moment(
    *,
    kind: int,
    values: int,
    codes: int,
    absmax: int,
    numel: int,
    block_size: int,
    device: int = -1,
    num_threads: int,
    stream: int = 0,
) -> None: ...
def dequantize_moment(
    *,
    kind: int,
    codes: int,
    absmax: int,
    values: int,
    numel: int,
    block_size: int,
    device: int = -1,
    num_threads: int,
    stream: int = 0,
) -> None: ...
def build_info() -> dict[str, Any]: ...
def set_isa(name: str) -> None: ...
def storage_to_float(dtype: int, src: int, dst: int, n: int) -> None: ...
def float_to_storage(dtype: int, src: int, dst: int, n: int) -> None: ...
def entries_unchanged(
    dicts: list[dict[str, Any]], keys: tuple[str, ...], expected: list[Any]
) -> bool: ...
def norm(
    *,
    dtypes: list[int],
    numels: list[int],
    data: list[int],
    mode: int,
    p: float,
    num_threads: int,
) -> tuple[float, float]: ...
def scale_(
    *, dtypes: list[int], numels: list[int], data: list[int], coef: float, num_threads: int
) -> None: ...
def _cuda_chunk_plan(
    numels: list[int],
    variants: list[int] = ...,
    depth: int = 4,
    param_bytes: int = ...,
    keyed: bool = False,
) -> Any: ...
def bandwidth_probe(
    *, inplace: list[int], source: int, n: int, scale: float, num_threads: int
) -> None: ...
def plain_adamw(
    *,
    numels: list[int],
    params: list[int],
    grads: list[int],
    exp_avgs: list[int],
    exp_avg_sqs: list[int],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: float,
    num_threads: int,
) -> None: ...
def plain_sgd(
    *,
    numels: list[int],
    params: list[int],
    grads: list[int],
    buffers: list[int],
    lr: float,
    momentum: float,
    num_threads: int,
) -> None: ...
def scaler_fit(
    *,
    dtype: int,
    rows: int,
    features: int,
    data: int,
    weights: int,
    moments: bool,
    stats: int,
    shift: int,
    choose_shift: bool,
    num_threads: int,
) -> int: ...
def scaler_merge(*, features: int, stats: int, other: int) -> None: ...
def scaler_transform(
    *,
    dtype: int,
    math_double: bool,
    op: int,
    rows: int,
    features: int,
    src: int,
    dst: int,
    a: int,
    b: int,
    clip: bool,
    low: float,
    high: float,
    num_threads: int,
) -> int: ...

__version__: str
