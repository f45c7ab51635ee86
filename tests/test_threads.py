"""The parallel region: results do not depend on how many threads run it, or
on other Python threads stepping their own optimizers at the same time.

Each element's update is independent of every other, so any thread count and
any interleaving must give the same bits as one thread alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import torch

import fusedoptim

SIZES = (1, 7, 1023, 65537, 300_000)  # below, around and far above one 32K-element chunk


def make_model(seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in SIZES]


def train(params: list[torch.nn.Parameter], cls_name: str, steps: int, seed: int) -> None:
    kwargs = {"momentum": 0.9} if cls_name == "SGD" else {}
    optimizer = getattr(fusedoptim, cls_name)(params, lr=1e-2, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1000)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        optimizer.step()


@pytest.fixture
def restore_threads():
    yield
    fusedoptim.set_num_threads(None)


@pytest.mark.parametrize("cls_name", ["AdamW", "SGD"])
def test_thread_count_does_not_change_a_bit(cls_name, restore_threads):
    results = []
    for threads in (1, 2, 3):
        fusedoptim.set_num_threads(threads)
        params = make_model(0)
        train(params, cls_name, steps=5, seed=0)
        results.append([p.detach().clone() for p in params])
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_optimizers_stepping_in_two_python_threads_at_once(restore_threads):
    fusedoptim.set_num_threads(2)
    expected = []
    for seed in (1, 2):
        params = make_model(seed)
        train(params, "AdamW", steps=20, seed=seed)
        expected.append(params)

    models = {seed: make_model(seed) for seed in (1, 2)}
    errors = []

    def run(seed: int) -> None:
        try:
            train(models[seed], "AdamW", steps=20, seed=seed)
        except BaseException as error:  # surfaced below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert not any(t.is_alive() for t in threads)
    for want, got in zip(expected, (models[1], models[2])):
        assert all(torch.equal(a, b) for a, b in zip(want, got))


def test_own_pool_and_openmp_team_give_the_same_bits(tmp_path):
    # FUSEDOPTIM_PARALLEL=pool is read once per process: compare two processes.
    script = (
        "import sys, torch, fusedoptim\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_threads import make_model, train\n"
        "fusedoptim.set_num_threads(2)\n"
        "params = make_model(3)\n"
        "train(params, 'AdamW', steps=4, seed=3)\n"
        "torch.save([p.detach() for p in params], sys.argv[2])\n"
        "print(fusedoptim.info()['parallel_backend'])\n"
    )
    outputs = {}
    for choice in ("pool", "default"):
        env = {**os.environ, "FUSEDOPTIM_PARALLEL": choice}
        path = tmp_path / f"{choice}.pt"
        run = subprocess.run(
            [sys.executable, "-c", script, os.path.dirname(__file__), str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        outputs[choice] = (run.stdout.strip(), torch.load(path))
    assert outputs["pool"][0] == "pool"
    assert all(torch.equal(a, b) for a, b in zip(outputs["pool"][1], outputs["default"][1]))
