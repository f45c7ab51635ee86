"""fusedoptim optimizers under torch's distributed engines: 2 CPU processes, gloo, loopback.

Each test spawns two ranks (torch.multiprocessing, spawn) that join a gloo
group on 127.0.0.1, run the check and exit; the parent waits at most
_TIMEOUT_S and kills them after that. Inside the ranks warnings are errors,
as under pytest.

Tolerance: where the distributed run averages gradients across ranks (DDP's
all-reduce, FSDP2's reduce-scatter), the gradient equals the single-process
gradient of the concatenated batch only up to float rounding, so params are
compared with rtol=_RTOL, atol=_ATOL (fp32; measured worst case 3.0e-8 for
DDP + AdamW and 4.5e-8 for FSDP2 + AdamW, absolute, on params of magnitude
below 1; a failure message prints the max |diff|). ZeRO, whose ranks all
compute the full-batch gradient, must match the single-process run bit for bit.
"""

from __future__ import annotations

import copy
import os
import socket
import time
import warnings
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fusedoptim

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)

_WORLD = 2
_TIMEOUT_S = 90
_RTOL = 1e-6
_ATOL = 2e-7
_STEPS = 4
_BATCH = 8  # per rank
_HYPER = {"lr": 1e-2, "weight_decay": 0.1, "l1": 1e-4}


# ---------------------------------------------------------------------------
# process harness
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, body, port: int, tmp_dir: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback, whatever the hostname resolves to
    warnings.simplefilter("error")
    # torch 2.13's torch.distributed.optim runs torch.jit.script/interface on its
    # functional optimizers at import time, which warns; nothing we call uses them.
    warnings.filterwarnings(
        "ignore",
        message=r"`torch\.jit\.(script|interface)` is deprecated",
        category=DeprecationWarning,
    )
    torch.set_num_threads(1)  # two ranks share the machine's cores
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=_WORLD,
        timeout=timedelta(seconds=_TIMEOUT_S),
    )
    try:
        body(rank, tmp_dir)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(body, tmp_path) -> None:
    """Runs body(rank, tmp_dir) on 2 gloo ranks; a failure in either fails the test."""
    context = mp.start_processes(
        _entry,
        args=(body, _free_port(), str(tmp_path)),
        nprocs=_WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + _TIMEOUT_S
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"the distributed ranks did not finish within {_TIMEOUT_S} s")


# ---------------------------------------------------------------------------
# model, data and the single-process reference
# ---------------------------------------------------------------------------


def _model() -> torch.nn.Module:
    # Sizes chosen so that FSDP2 shards unevenly (3 rows -> 2 + 1) and leaves
    # rank 1 an empty shard (the last bias has one element).
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 10),
        torch.nn.Tanh(),
        torch.nn.Linear(10, 3),
        torch.nn.Tanh(),
        torch.nn.Linear(3, 1),
    )


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(_WORLD * _BATCH, 6, generator=gen), torch.randn(
        _WORLD * _BATCH, 1, generator=gen
    )


def _local(tensor: torch.Tensor, rank: int) -> torch.Tensor:
    return tensor[rank * _BATCH : (rank + 1) * _BATCH]


def _loss(model, x, y) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(x), y)


def _reference_step(model, optimizer, step: int, max_norm: float | None = None) -> None:
    x, y = _batch(step)
    optimizer.zero_grad()
    _loss(model, x, y).backward()
    if max_norm is not None:
        fusedoptim.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _assert_close_to_reference(actual, expected, what: str) -> None:
    deviation = (actual - expected).abs().max().item()
    torch.testing.assert_close(
        actual,
        expected,
        rtol=_RTOL,
        atol=_ATOL,
        msg=lambda m: f"{what} (max |diff| {deviation:.3g}): {m}",
    )


def _assert_equal_on_all_ranks(flat: torch.Tensor) -> None:
    gathered = [torch.empty_like(flat) for _ in range(_WORLD)]
    dist.all_gather(gathered, flat)
    for other in gathered[1:]:
        assert torch.equal(gathered[0], other), "params differ between ranks"


# ---------------------------------------------------------------------------
# DistributedDataParallel
# ---------------------------------------------------------------------------


def _ddp_body(rank: int, tmp_dir: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    for make_optimizer in (
        lambda params: fusedoptim.AdamW(params, **_HYPER),
        lambda params: fusedoptim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, l1=1e-4),
    ):
        model = _model()
        reference = copy.deepcopy(model)
        ddp = DistributedDataParallel(model)
        optimizer = make_optimizer(ddp.parameters())
        reference_optimizer = make_optimizer(reference.parameters())
        for step in range(_STEPS):
            x, y = _batch(step)
            optimizer.zero_grad()
            _loss(ddp, _local(x, rank), _local(y, rank)).backward()
            optimizer.step()
            _reference_step(reference, reference_optimizer, step)
        params = _flat(model.parameters())
        _assert_equal_on_all_ranks(params)
        _assert_close_to_reference(params, _flat(reference.parameters()), type(optimizer).__name__)


def test_ddp_matches_single_process_on_concatenated_batch(tmp_path):
    run_ranks(_ddp_body, tmp_path)


# ---------------------------------------------------------------------------
# ZeroRedundancyOptimizer
# ---------------------------------------------------------------------------


def _zero_body(rank: int, tmp_dir: str) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    model = _model()
    reference = copy.deepcopy(model)
    optimizer = ZeroRedundancyOptimizer(
        model.parameters(), optimizer_class=fusedoptim.AdamW, **_HYPER
    )
    reference_optimizer = fusedoptim.AdamW(reference.parameters(), **_HYPER)
    # Every rank computes the full-batch gradient, so ZeRO's sharded step must
    # reproduce the single-process step exactly.
    for step in range(_STEPS):
        _reference_step(model, optimizer, step)
        _reference_step(reference, reference_optimizer, step)
    params = _flat(model.parameters())
    _assert_equal_on_all_ranks(params)
    assert torch.equal(params, _flat(reference.parameters()))

    # Each rank holds the state of its own partition only.
    owned = len(optimizer.optim.state)
    counts = [None] * _WORLD
    dist.all_gather_object(counts, owned)
    assert sum(counts) == len(list(model.parameters())) and all(counts)

    # Consolidation: rank 0 gets the whole state, in the single-process layout.
    optimizer.consolidate_state_dict(to=0)
    state_dict = [optimizer.state_dict() if rank == 0 else None]
    if rank == 0:
        expected = reference_optimizer.state_dict()
        assert state_dict[0]["state"].keys() == expected["state"].keys()
        for index, state in expected["state"].items():
            for key, value in state.items():
                assert torch.equal(state_dict[0]["state"][index][key], value), (index, key)
        assert state_dict[0]["param_groups"][0]["l1"] == _HYPER["l1"]

    # ... and loads back into a fresh ZeRO optimizer that then steps like the reference.
    dist.broadcast_object_list(state_dict, src=0)
    resumed_model = copy.deepcopy(model)
    resumed = ZeroRedundancyOptimizer(
        resumed_model.parameters(), optimizer_class=fusedoptim.AdamW, **_HYPER
    )
    resumed.load_state_dict(state_dict[0])
    _reference_step(resumed_model, resumed, _STEPS)
    _reference_step(reference, reference_optimizer, _STEPS)
    assert torch.equal(_flat(resumed_model.parameters()), _flat(reference.parameters()))


def test_zero_redundancy_optimizer_matches_single_process(tmp_path):
    run_ranks(_zero_body, tmp_path)


# ---------------------------------------------------------------------------
# FSDP2 (fully_shard): DTensor params
# ---------------------------------------------------------------------------


def _sharded_model(mesh) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = _model()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _fsdp_body(rank: int, tmp_dir: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    mesh = init_device_mesh("cpu", (_WORLD,))
    model = _sharded_model(mesh)
    reference = _model()
    optimizer = fusedoptim.AdamW(model.parameters(), **_HYPER)
    reference_optimizer = fusedoptim.AdamW(reference.parameters(), **_HYPER)
    max_norm = 0.05  # small enough to clip on every step
    for step in range(_STEPS):
        x, y = _batch(step)
        optimizer.zero_grad()
        _loss(model, _local(x, rank), _local(y, rank)).backward()
        expected_total = torch.nn.utils.get_total_norm(
            [p.grad.full_tensor() for p in model.parameters()]
        )
        # DTensor grads take torch's path; the total is a DTensor as with torch.
        total = fusedoptim.clip_grad_norm_(model.parameters(), max_norm)
        assert isinstance(total, DTensor)
        _assert_close_to_reference(total.full_tensor(), expected_total, "clip total norm")
        optimizer.step()
        _reference_step(reference, reference_optimizer, step, max_norm)

    for p, p_ref in zip(model.parameters(), reference.parameters()):
        assert isinstance(p, DTensor)
        state = optimizer.state[p]
        for key in ("exp_avg", "exp_avg_sq"):
            # State is a DTensor laid out like the param: the local shard's shape.
            assert isinstance(state[key], DTensor) and state[key].placements == p.placements
            assert state[key].to_local().shape == p.to_local().shape
        _assert_close_to_reference(p.full_tensor(), p_ref.detach(), "FSDP2 param")
        _assert_close_to_reference(
            state["exp_avg"].full_tensor(), reference_optimizer.state[p_ref]["exp_avg"], "exp_avg"
        )
    if rank == 1:  # the last bias (1 element) lives on rank 0 alone
        assert model[4].bias.to_local().numel() == 0, "no empty shard tested"

    # torch.distributed.checkpoint: state dict round trip and a save/load on disk.
    optim_state = get_optimizer_state_dict(model, optimizer)
    model_state = get_model_state_dict(model)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp_dir)

    resumed_model = _sharded_model(mesh)
    resumed = fusedoptim.AdamW(resumed_model.parameters(), **_HYPER)
    # get_optimizer_state_dict on a fresh optimizer initializes its state (a
    # zero-grad, lr=0 step) so that DCP has tensors to load into.
    target = {
        "model": get_model_state_dict(resumed_model),
        "optim": get_optimizer_state_dict(resumed_model, resumed),
    }
    dcp.load(target, checkpoint_id=tmp_dir)
    set_model_state_dict(resumed_model, target["model"])
    set_optimizer_state_dict(resumed_model, resumed, target["optim"])

    for model_, optimizer_ in ((model, optimizer), (resumed_model, resumed)):
        x, y = _batch(_STEPS)
        optimizer_.zero_grad()
        _loss(model_, _local(x, rank), _local(y, rank)).backward()
        optimizer_.step()
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(p.to_local(), q.to_local())
        for key in ("exp_avg", "exp_avg_sq", "step"):
            a, b = optimizer.state[p][key], resumed.state[q][key]
            assert type(a) is type(b)
            assert torch.equal(
                a.to_local() if isinstance(a, DTensor) else a,
                b.to_local() if isinstance(b, DTensor) else b,
            )


def test_fsdp2_fully_shard_updates_local_shards(tmp_path):
    run_ranks(_fsdp_body, tmp_path)
