"""What the suite times: each implementation of one optimizer step, as a callable.

Every implementation of a case steps the same param tensors with the same
gradients, which are set once: the timed call is ``optimizer.step()`` alone,
from Python, overhead included. Each keeps its own optimizer state.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import fusedoptim
from fusedoptim import _backend
from fusedoptim.optim._state_precision import DEFAULT_BLOCK_SIZE, DEFAULT_MIN_8BIT_SIZE


@dataclass(frozen=True)
class OptimizerKind:
    name: str
    label: str
    fused_class: type
    torch_class: type
    kwargs: dict = field(default_factory=dict)
    # Tensors read and written in place per element (p; p, buf; p, m, v); the
    # gradient is read once more: bytes = (2 * streams + 1) * element size.
    streams: int = 1
    # The 8-bit kinds: fusedoptim's optimizer of the same update with float
    # state, timed beside them (None for the float kinds).
    float_class: type | None = None

    @property
    def eight_bit(self) -> bool:
        return self.float_class is not None

    def bytes_per_element(self, dtype: torch.dtype) -> float:
        """Bytes one step moves per element of a param (for the 8-bit kinds, of a
        param of at least min_8bit_size elements); see [note: bytes of a step]."""
        size = torch.empty((), dtype=dtype).element_size()
        if not self.eight_bit:
            return (2 * self.streams + 1) * size
        return 3 * size + (self.streams - 1) * (2 + 2 * 4 / DEFAULT_BLOCK_SIZE)

    def bytes_per_step(self, shapes, dtype: torch.dtype) -> int:
        """Bytes one step over params of these shapes moves; see [note: bytes of a step]."""
        size = torch.empty((), dtype=dtype).element_size()
        moments = self.streams - 1
        total = 0
        for shape in shapes:
            n = math.prod(shape)
            if self.eight_bit and n >= DEFAULT_MIN_8BIT_SIZE:
                blocks = -(-n // DEFAULT_BLOCK_SIZE)
                total += 3 * size * n + moments * (2 * n + 2 * 4 * blocks)
            else:
                total += (2 * self.streams + 1) * size * n
        return total


# [note: bytes of a step] A float-state step reads p, g and each state tensor
# and writes p and each state tensor: (2 * streams + 1) elements of the
# param's size. An 8-bit step reads p and g and writes p (3 elements of the
# param's size), and per moment reads and writes one uint8 code per element
# and one float32 absmax per block of DEFAULT_BLOCK_SIZE elements (the old
# one decodes, the new one is written): AdamW8bit on fp32 params moves
# 12 + 2 * (2 + 8 / 256) = 16.06 bytes per element against AdamW's 28, SGD8bit
# with momentum 12 + 2 + 8 / 256 = 14.03 against 20. Params under
# min_8bit_size elements keep float state and move what the float kind moves.
KINDS = {
    "sgd": OptimizerKind("sgd", "SGD", fusedoptim.SGD, torch.optim.SGD, {"lr": 1e-3}, 1),
    "sgd_momentum": OptimizerKind(
        "sgd_momentum",
        "SGD momentum",
        fusedoptim.SGD,
        torch.optim.SGD,
        {"lr": 1e-3, "momentum": 0.9},
        2,
    ),
    "adam": OptimizerKind("adam", "Adam", fusedoptim.Adam, torch.optim.Adam, {"lr": 1e-3}, 3),
    "adamw": OptimizerKind(
        "adamw",
        "AdamW",
        fusedoptim.AdamW,
        torch.optim.AdamW,
        {"lr": 1e-3, "weight_decay": 1e-2},
        3,
    ),
    "sgd_momentum8bit": OptimizerKind(
        "sgd_momentum8bit",
        "SGD8bit momentum",
        fusedoptim.SGD8bit,
        torch.optim.SGD,
        {"lr": 1e-3, "momentum": 0.9},
        2,
        fusedoptim.SGD,
    ),
    "adam8bit": OptimizerKind(
        "adam8bit",
        "Adam8bit",
        fusedoptim.Adam8bit,
        torch.optim.Adam,
        {"lr": 1e-3},
        3,
        fusedoptim.Adam,
    ),
    "adamw8bit": OptimizerKind(
        "adamw8bit",
        "AdamW8bit",
        fusedoptim.AdamW8bit,
        torch.optim.AdamW,
        {"lr": 1e-3, "weight_decay": 1e-2},
        3,
        fusedoptim.AdamW,
    ),
}

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

FUSEDOPTIM = "fusedoptim"
FUSEDOPTIM_FLOAT = "fusedoptim float state"
TORCH_FOR_LOOP = "torch for-loop"
TORCH_FOREACH = "torch foreach"
TORCH_FUSED = "torch fused"
PLAIN_C = "plain C loop"
DEEPSPEED = "DeepSpeed CPUAdam"
PROBE = "bandwidth probe"
TORCH_VARIANTS = (TORCH_FOR_LOOP, TORCH_FOREACH, TORCH_FUSED)
# The 8-bit references, "<library> <class>": the class of fusedoptim's name
# (fusedoptim took bitsandbytes' and torchao's names); see [note: third-party
# 8-bit references].
BITSANDBYTES = "bitsandbytes"
TORCHAO = "torchao"
EIGHT_BIT_LIBRARIES = {BITSANDBYTES: "bitsandbytes.optim", TORCHAO: "torchao.optim"}


def eight_bit_reference(library: str, kind: OptimizerKind) -> str:
    return f"{library} {kind.fused_class.__name__}"


# [note: probe size] The probe runs on its own float32 arrays of the workload's
# size per stream, capped at 64 MiB each: past the 36 MiB L3 cache of the
# machines we measure on, a larger array moves at the same rate, and the cap
# saves GBs on GPT-2-sized runs. A workload that fits in cache (500 x 1,000)
# gets a probe that fits in cache too, so its limit is the cache's.
PROBE_MAX_ELEMENTS = 16 * 2**20


@dataclass
class Implementation:
    name: str
    step: Callable[[], None] | None
    skipped: str | None = None  # why it is not timed
    eight_bit: bool = False  # keeps 8-bit state: verified to VERIFY_RTOL_8BIT


def make_params(shapes, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    """Params with gradients set once; values in [-1, 1] keep every update normal-range."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.empty(shape, dtype=dtype).uniform_(-1, 1, generator=generator)
        p.grad = torch.empty(shape, dtype=dtype).uniform_(-1, 1, generator=generator)
        params.append(p.requires_grad_())
    return params


def implementations(
    kind: OptimizerKind, params: list[torch.Tensor], eight_bit_references: bool = True
) -> list[Implementation]:
    """fusedoptim, torch's three CPU paths, and the references that apply to this case:
    for the float kinds a plain C loop and DeepSpeed; for the 8-bit kinds fusedoptim's
    float-state optimizer and (``eight_bit_references``) bitsandbytes' and torchao's."""
    dtype = params[0].dtype
    out = [_optimizer(FUSEDOPTIM, lambda: kind.fused_class(params, **kind.kwargs))]
    out[0].eight_bit = kind.eight_bit
    if kind.eight_bit:
        out.append(_optimizer(FUSEDOPTIM_FLOAT, lambda: kind.float_class(params, **kind.kwargs)))
    for name, flags in (
        (TORCH_FOR_LOOP, {"foreach": False}),
        (TORCH_FOREACH, {"foreach": True}),
        (TORCH_FUSED, {"fused": True}),
    ):
        out.append(_optimizer(name, lambda f=flags: kind.torch_class(params, **kind.kwargs, **f)))
    if kind.eight_bit:
        for library in EIGHT_BIT_LIBRARIES:
            out.append(_eight_bit_reference(library, kind, params, eight_bit_references))
        return out
    if dtype == torch.float32:
        out.append(Implementation(PLAIN_C, _plain_c(kind, params)))
    else:
        out.append(Implementation(PLAIN_C, None, "float32 only"))
    if kind.name in ("adam", "adamw"):
        out.append(_deepspeed(kind, params))
    return out


def probe(kind: OptimizerKind, params: list[torch.Tensor]) -> tuple[Implementation, int]:
    """The bandwidth line for this case's access pattern, and the bytes one call moves.

    The probe's arrays are float32: for an 8-bit kind it is the float kind's
    pattern, and "% limit" compares the 8-bit step's GB/s (its own bytes, see
    [note: bytes of a step]) with that line's."""
    per_stream_bytes = sum(p.numel() * p.element_size() for p in params)
    n = max(1, min(per_stream_bytes // 4, PROBE_MAX_ELEMENTS))
    arrays = [torch.rand(n) for _ in range(kind.streams)]
    source = torch.rand(n)
    run = _backend.bandwidth_probe(arrays, source, 0.5)
    # Default arguments keep the arrays alive: the C side holds bare addresses.
    return (
        Implementation(PROBE, lambda keep=(arrays, source): run()),
        (2 * kind.streams + 1) * 4 * n,
    )


# [note: verifying the references] A speed ratio means something only against
# an implementation that computes the same step. Before a case is timed, every
# implementation runs a few steps on small params of the case's dtype (sizes
# that exercise vector loops and tails, lr=0.1 so that each update is many
# bf16 ulps) and is compared with torch's for-loop, the reference fusedoptim
# follows. torch 2.13's fused CPU SGD for bf16/fp16 fails this: its vector
# loop never writes the param and reads the bf16 momentum buffer as float32,
# so it moves different bytes and is timed, but marked, not compared.
VERIFY_SHAPES = ((1023,), (65537,))
VERIFY_STEPS = 5
VERIFY_LR = 0.1
# Relative to the params' scale: a few fp32 ulps over the steps; for bf16, a
# few bf16 ulps (the for-loop rounds every op to bf16, the fused kernels once
# per step). A step that is missing or wrong moves params by about lr.
VERIFY_RTOL = {torch.float32: 1e-5, torch.bfloat16: 16 * 2.0**-8}
# [note: verifying 8-bit state] The 8-bit kinds are compared with the same
# float reference, torch's for-loop, on shapes whose large params take the
# 8-bit form in every library: torchao quantizes only sizes its block divides,
# hence 65536 beside fusedoptim's partial-block case 65537; 1023 is under
# min_8bit_size and keeps float state everywhere. An 8-bit step differs from
# the float one by quantization error, not by ulps, and the largest
# difference says little: a linear or dynamic-map code (bitsandbytes,
# torchao) rounds the moments of an element whose gradient is tiny against
# its block's largest to 0 or far off, so a few elements in a thousand move
# quite differently (up to 0.29 of the params' scale in 5 steps, as large as
# a skipped step). What an 8-bit implementation must get right is the update
# as a whole: its params' total change over the steps, p - p0, is compared
# with the for-loop's, as the RMS of the difference over the RMS of the
# for-loop's change. Measured (5 steps, lr=0.1; tests/test_bench_8bit.py quotes
# the run): fusedoptim 0.015-0.021, bitsandbytes 0.005-0.034, torchao
# 0.012-0.019, fp32 and bf16. A step that is skipped or has twice the lr is
# at 1.0, the wrong sign at 2.0, Adam without bias correction far above.
# 0.1 passes every correct 8-bit step with a factor of 3 to spare and catches
# those. Float-state implementations in an 8-bit case keep the float check.
VERIFY_SHAPES_8BIT = ((1023,), (65537,), (65536,))
VERIFY_RTOL_8BIT = 0.1


def wrong_results(
    kind: OptimizerKind, dtype: torch.dtype, eight_bit_references: bool = True
) -> dict[str, str]:
    """{implementation: why} for those whose results differ from torch's for-loop;
    see [note: verifying the references] and [note: verifying 8-bit state]."""
    return {
        name: why
        for name, (deviation, limit, why) in deviations(kind, dtype, eight_bit_references).items()
        if not deviation <= limit
    }


def deviations(
    kind: OptimizerKind, dtype: torch.dtype, eight_bit_references: bool = True
) -> dict[str, tuple[float, float, str]]:
    """{implementation: (its deviation from torch's for-loop, its tolerance, what
    to say if it is over)} for every implementation that runs but the for-loop;
    see [note: verifying the references] and [note: verifying 8-bit state]."""
    check = dataclasses.replace(kind, kwargs={**kind.kwargs, "lr": VERIFY_LR})
    shapes = VERIFY_SHAPES_8BIT if kind.eight_bit else VERIFY_SHAPES

    def build(params: list[torch.Tensor]) -> list[Implementation]:
        return implementations(check, params, eight_bit_references)

    listed = {i.name: i.eight_bit for i in build(make_params(shapes, dtype)) if i.step}
    results = {}
    for name in listed:
        params = make_params(shapes, dtype, seed=1)
        step = next(i.step for i in build(params) if i.name == name)
        for _ in range(VERIFY_STEPS):
            step()
        results[name] = torch.cat([p.detach().double().flatten() for p in params])
    reference = results.pop(TORCH_FOR_LOOP, None)
    if reference is None:
        return {}
    start = torch.cat([p.detach().double().flatten() for p in make_params(shapes, dtype, seed=1)])
    scale = reference.abs().max().item()
    change = (reference - start).norm().item()
    after = f"after {VERIFY_STEPS} steps (lr={VERIFY_LR})"
    out = {}
    for name, got in results.items():
        if listed[name]:
            limit = VERIFY_RTOL_8BIT
            deviation = (got - reference).norm().item() / change
            what = f"its updates differ from {TORCH_FOR_LOOP}'s by {deviation:.2g} (RMS, of theirs)"
        else:
            limit = VERIFY_RTOL[dtype]
            deviation = (got - reference).abs().max().item() / scale
            what = f"its params differ from {TORCH_FOR_LOOP}'s by {deviation:.2g} of their scale"
        out[name] = (deviation, limit, f"wrong results: {what} {after}, over {limit:.2g}")
    return out


def _optimizer(name: str, build: Callable[[], torch.optim.Optimizer]) -> Implementation:
    try:
        optimizer = build()
    except (RuntimeError, ValueError, TypeError) as error:
        return Implementation(name, None, f"{type(error).__name__}: {error}")
    return Implementation(name, optimizer.step)


def _plain_c(kind: OptimizerKind, params: list[torch.Tensor]) -> Callable[[], None]:
    grads = [p.grad for p in params]
    data = [p.detach() for p in params]
    lr = kind.kwargs["lr"]
    if kind.streams == 3:
        exp_avgs = [torch.zeros_like(p) for p in data]
        exp_avg_sqs = [torch.zeros_like(p) for p in data]
        weight_decay = kind.kwargs.get("weight_decay", 0.0) if kind.name == "adamw" else 0.0
        step = _backend.plain_adamw(
            data,
            grads,
            exp_avgs,
            exp_avg_sqs,
            lr=lr,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
            weight_decay=weight_decay,
        )
        count = itertools.count(1)
        # The closure keeps the state tensors alive: the C side holds bare addresses.
        return lambda state=(exp_avgs, exp_avg_sqs): step(next(count))
    buffers = [torch.zeros_like(p) for p in data] if kind.streams == 2 else []
    step = _backend.plain_sgd(data, grads, buffers, lr=lr, momentum=kind.kwargs.get("momentum", 0))
    return lambda state=buffers: step()


def _deepspeed(kind: OptimizerKind, params: list[torch.Tensor]) -> Implementation:
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except Exception as error:  # any failure to import or build means "not available"
        return Implementation(DEEPSPEED, None, f"not available ({type(error).__name__})")
    try:
        optimizer = DeepSpeedCPUAdam(params, adamw_mode=kind.name == "adamw", **kind.kwargs)
    except Exception as error:
        return Implementation(DEEPSPEED, None, f"{type(error).__name__}: {error}")
    return Implementation(DEEPSPEED, optimizer.step)


# [note: third-party 8-bit references] bitsandbytes and torchao are optional
# benchmark extras, never dependencies: each is imported here, when a case
# asks for it, and is "not timed" with the reason when it does not import or
# has no class of fusedoptim's name (torchao has no 8-bit SGD). They run with
# their defaults, which are fusedoptim's: 256-element blocks, float state
# under 4096 elements (torchao also keeps float state for sizes its block
# does not divide). On the CPU each of their steps takes hundreds of ms per
# 16M params and torchao compiles its step (torch.compile, once per shape)
# on the first call, so the quick run lists them without timing them.
def _eight_bit_reference(
    library: str, kind: OptimizerKind, params: list[torch.Tensor], enabled: bool
) -> Implementation:
    name = eight_bit_reference(library, kind)
    if not enabled:
        return Implementation(name, None, "not in the quick run (--full or --optimizers times it)")
    module_name = EIGHT_BIT_LIBRARIES[library]
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any failure to import means "not available"
        return Implementation(name, None, f"not available ({type(error).__name__})")
    cls = getattr(module, kind.fused_class.__name__, None)
    if cls is None:
        return Implementation(name, None, f"{module_name} has no {kind.fused_class.__name__}")
    try:
        optimizer = cls(params, **kind.kwargs)
    except Exception as error:
        return Implementation(name, None, f"{type(error).__name__}: {error}")
    return Implementation(name, optimizer.step, eight_bit=True)
