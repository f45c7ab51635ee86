"""The 8-bit optimizers in the benchmark suite (fusedoptim._bench) and the
memory measurements behind benchmarks/bench_memory.py: the cases run, their
bytes are counted right, the references are verified with a tolerance that
still catches a broken step, bitsandbytes and torchao are used when they import
and skipped cleanly when they do not. Nothing here asserts a speed."""

import dataclasses
import json
import os
import subprocess
import sys
import types

import pytest
import torch

import fusedoptim
from fusedoptim._bench import implementations, memory, suite
from fusedoptim._bench.implementations import KINDS
from fusedoptim.cli import bench as bench_cli
from fusedoptim.cli import main

LIBRARIES = ("bitsandbytes", "bitsandbytes.optim", "torchao", "torchao.optim")


@pytest.fixture
def no_libraries(monkeypatch):
    """bitsandbytes and torchao as if not installed (None in sys.modules makes
    their import raise ModuleNotFoundError), whatever this environment has."""
    for name in LIBRARIES:
        monkeypatch.setitem(sys.modules, name, None)


def _fake_libraries(monkeypatch, **classes):
    """bitsandbytes.optim and torchao.optim as modules holding ``classes``
    (``bitsandbytes_AdamW8bit=cls``)."""
    for library in ("bitsandbytes", "torchao"):
        package = types.ModuleType(library)
        optim = types.ModuleType(f"{library}.optim")
        for key, cls in classes.items():
            prefix, _, name = key.partition("_")
            if prefix == library:
                setattr(optim, name, cls)
        package.optim = optim
        monkeypatch.setitem(sys.modules, library, package)
        monkeypatch.setitem(sys.modules, f"{library}.optim", optim)


def test_bytes_of_an_8bit_step():
    # [note: bytes of a step]: p, g read and p written at the param's size; per
    # moment one code read and written, one float32 absmax per 256 read and written.
    adamw8 = KINDS["adamw8bit"]
    assert adamw8.bytes_per_element(torch.float32) == 12 + 2 * (2 + 8 / 256)
    assert adamw8.bytes_per_element(torch.bfloat16) == 6 + 2 * (2 + 8 / 256)
    assert KINDS["adam8bit"].bytes_per_element(torch.float32) == 16.0625
    assert KINDS["sgd_momentum8bit"].bytes_per_element(torch.float32) == 14.03125
    assert KINDS["adamw"].bytes_per_element(torch.float32) == 28
    # Under min_8bit_size (4096) the state stays float: the float kind's bytes.
    # 65537 elements: 257 blocks, the last one partial.
    shapes = [(1000,), (4095,), (65537,), (256, 256)]
    small = 28 * (1000 + 4095)
    large = [(65537, 257), (65536, 256)]
    expected = small + sum(12 * n + 2 * (2 * n + 8 * blocks) for n, blocks in large)
    assert adamw8.bytes_per_step(shapes, torch.float32) == expected
    assert KINDS["adamw"].bytes_per_step(shapes, torch.float32) == 28 * (5095 + 65537 + 65536)
    sgd8 = KINDS["sgd_momentum8bit"]
    assert sgd8.bytes_per_step([(16_000_000,)], torch.float32) == 16_000_000 * 14 + 8 * 62_500


def test_suite_runs_the_8bit_kinds(tmp_path, capsys, no_libraries):
    path = tmp_path / "bench.json"
    args = ["bench", "--workloads", "500,5000", "--optimizers", "adamw8bit,sgd_momentum8bit"]
    args += ["--dtypes", "fp32,bf16", "--rounds", "2", "--warmup", "1", "--quiet", "--details"]
    assert main([*args, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "vs float state" in out and "first / median" in out
    assert "not timed: bitsandbytes AdamW8bit: not available (ModuleNotFoundError)" in out
    data = json.loads(path.read_text())
    cases = {(c["workload"], c["optimizer"], c["dtype"]): c for c in data["cases"]}
    assert len(cases) == 8
    big = cases["5000", "adamw8bit", "fp32"]
    assert big["eight_bit"]
    # 5000 elements: 20 blocks of 256 (the last partial); 500 keeps float state.
    assert big["bytes_per_step"] == 12 * 5000 + 2 * (2 * 5000 + 8 * 20)
    assert cases["500", "adamw8bit", "fp32"]["bytes_per_step"] == 28 * 500
    assert cases["5000", "adamw8bit", "bf16"]["bytes_per_step"] == 6 * 5000 + 2 * (10000 + 160)
    assert cases["5000", "sgd_momentum8bit", "fp32"]["bytes_per_step"] == 12 * 5000 + 10000 + 160
    for case in cases.values():
        timed = case["implementations"]
        assert {"fusedoptim", "fusedoptim float state", "torch for-loop"} <= set(timed)
        assert "plain C loop" not in timed and "plain C loop" not in case["skipped"]
        for r in timed.values():
            assert r["runs"] == 2 and r["first_ms"] > 0
        # fusedoptim's 8-bit step passes the verification; torch 2.13's fused
        # CPU SGD for bf16 is the one known failure ([note: verifying the references]).
        assert set(case["wrong"]) <= {"torch fused"}
        assert "fusedoptim" not in case["wrong"]
        skipped = case["skipped"]
        label = "SGD8bit" if case["optimizer"] == "sgd_momentum8bit" else "AdamW8bit"
        for library in ("bitsandbytes", "torchao"):
            assert skipped[f"{library} {label}"] == "not available (ModuleNotFoundError)"


def test_quick_run_has_one_8bit_case_without_third_party_references():
    settings = suite.Settings()
    todo = [(w.name, o, d) for w, o, d in suite.cases(settings)]
    assert len(todo) == 9 and todo[-1] == ("16M", "adamw8bit", "fp32")
    assert [case for case in todo if KINDS[case[1]].eight_bit] == [todo[-1]]
    assert not settings.eight_bit_references
    params = implementations.make_params([(10,)], torch.float32)
    listed = implementations.implementations(KINDS["adamw8bit"], params, False)
    skipped = {i.name: i.skipped for i in listed if i.step is None}
    assert "not in the quick run" in skipped["bitsandbytes AdamW8bit"]
    assert "not in the quick run" in skipped["torchao AdamW8bit"]
    # --full: every kind, references on; naming the cases drops the extra one.
    full = suite.Settings.full()
    assert {"adamw8bit", "adam8bit", "sgd_momentum8bit"} <= set(full.optimizers)
    assert full.eight_bit_references and full.extra_cases == ()
    parser = __import__("argparse").ArgumentParser()
    bench_cli.add_arguments(parser)
    chosen = bench_cli.settings_from(parser.parse_args(["--optimizers", "adamw8bit"]))
    assert chosen.extra_cases == () and chosen.eight_bit_references
    workloads_only = bench_cli.settings_from(parser.parse_args(["--workloads", "16M"]))
    assert workloads_only.extra_cases == () and not workloads_only.eight_bit_references


def test_references_are_timed_when_the_library_imports(monkeypatch):
    class Stand8bit(fusedoptim.AdamW8bit):
        pass

    _fake_libraries(monkeypatch, bitsandbytes_AdamW8bit=Stand8bit, torchao_Adam8bit=Stand8bit)
    params = implementations.make_params([(5000,)], torch.float32)
    listed = {i.name: i for i in implementations.implementations(KINDS["adamw8bit"], params)}
    assert listed["bitsandbytes AdamW8bit"].step is not None
    assert listed["bitsandbytes AdamW8bit"].eight_bit
    assert listed["torchao AdamW8bit"].skipped == "torchao.optim has no AdamW8bit"
    sgd = {i.name: i for i in implementations.implementations(KINDS["sgd_momentum8bit"], params)}
    assert sgd["torchao SGD8bit"].skipped == "torchao.optim has no SGD8bit"
    # A reference that fails to build is not timed, with the error.
    _fake_libraries(monkeypatch, bitsandbytes_AdamW8bit=lambda *a, **k: 1 / 0)
    listed = {i.name: i for i in implementations.implementations(KINDS["adamw8bit"], params)}
    assert listed["bitsandbytes AdamW8bit"].step is None
    assert listed["bitsandbytes AdamW8bit"].skipped.startswith("ZeroDivisionError")


class _SkipsTheUpdate(fusedoptim.AdamW8bit):
    """A stand-in for a broken 8-bit kernel: it keeps its state and writes no param."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = torch.tensor(1.0)


class _TwiceTheLr(fusedoptim.AdamW8bit):
    def __init__(self, params, lr, **kwargs):
        super().__init__(params, 2 * lr, **kwargs)


class _SignFlipped(fusedoptim.AdamW8bit):
    def __init__(self, params, **kwargs):
        super().__init__(params, maximize=True, **kwargs)


# [note: verifying 8-bit state] The run the note quotes (5 steps, lr=0.1,
# params and grads uniform in [-1, 1]): the RMS of (p - p_for_loop) over the
# RMS of the for-loop's change, fp32 / bf16:
#   fusedoptim AdamW8bit 0.0149 / 0.0212, Adam8bit 0.0149 / 0.0168,
#   SGD8bit 0.0150 / 0.0160; bitsandbytes 0.50.2 AdamW8bit 0.0302 /
#   0.0335, Adam8bit 0.0302 / 0.0311, SGD8bit 0.0045 / 0.0069; torchao 0.18.0
#   AdamW8bit 0.0122 / 0.0185, Adam8bit 0.0122 / 0.0132.
# The largest single-element difference of bitsandbytes and torchao was 0.27
# and 0.29 of the params' scale (elements with tiny grads in their block),
# which is why the 8-bit check is on the update as a whole.
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["adamw8bit", "adam8bit", "sgd_momentum8bit"])
def test_8bit_verification_passes_correct_steps(kind, dtype, no_libraries):
    found = implementations.deviations(KINDS[kind], dtype)
    deviation, limit, _ = found["fusedoptim"]
    assert limit == implementations.VERIFY_RTOL_8BIT
    # The verification shapes do take the 8-bit form: the error is quantization's.
    assert 1e-3 < deviation < limit / 3
    # The float-state optimizer in the same case keeps the float tolerance.
    assert found["fusedoptim float state"][1] == implementations.VERIFY_RTOL[dtype]
    assert found["fusedoptim float state"][0] <= implementations.VERIFY_RTOL[dtype]


@pytest.mark.parametrize("broken", [_SkipsTheUpdate, _TwiceTheLr, _SignFlipped])
def test_8bit_verification_catches_broken_steps(broken, no_libraries):
    kind = dataclasses.replace(KINDS["adamw8bit"], fused_class=broken)
    # 1.0 for a skipped step or twice the lr, 2.0 for the wrong sign.
    assert implementations.deviations(kind, torch.float32)["fusedoptim"][0] >= 0.9
    wrong = implementations.wrong_results(kind, torch.float32)
    assert set(wrong) == {"fusedoptim"}
    assert wrong["fusedoptim"].startswith("wrong results: its updates differ from torch for-loop")


def test_8bit_verification_catches_a_broken_reference(monkeypatch):
    _fake_libraries(monkeypatch, bitsandbytes_AdamW8bit=_SkipsTheUpdate)
    wrong = implementations.wrong_results(KINDS["adamw8bit"], torch.bfloat16)
    assert set(wrong) == {"bitsandbytes AdamW8bit"}


def test_state_bytes_count_the_state_tensors():
    big, small = torch.zeros(65537, requires_grad=True), torch.zeros(100, requires_grad=True)
    for p in (big, small):
        p.grad = torch.ones_like(p)
    optimizer = fusedoptim.AdamW8bit([big, small])
    optimizer.step()
    counted = memory.state_bytes(optimizer)
    # big: step, 2 x (65537 codes + 257 float32 absmax); small: step, 2 x 100 float32.
    large = 4 + 2 * (65537 + 4 * 257)
    assert counted.large == large and counted.large_params == 65537
    assert counted.total == large + 4 + 2 * 400
    assert counted.params == 65637
    assert counted.per_large_param == large / 65537  # 2.0314
    assert counted.by_key["exp_avg_codes"] == 65537
    # A storage listed twice (a lookup table shared by every param) counts once.
    optimizer.state[small]["shared"] = optimizer.state[big]["exp_avg_codes"]
    assert memory.state_bytes(optimizer).total == counted.total


def test_state_bytes_of_a_tensor_subclass():
    two_tensor = pytest.importorskip("torch.testing._internal.two_tensor")
    p = torch.zeros(5000, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=0.1)
    optimizer.state[p]["momentum_buffer"] = two_tensor.TwoTensor(
        torch.zeros(5000), torch.ones(5000)
    )
    counted = memory.state_bytes(optimizer)
    # Its inner tensors' bytes, not numel * element_size of the wrapper.
    assert counted.total == 2 * 4 * 5000


def test_peak_rss_reads_a_temporary():
    # In a process of its own: PeakRss changes malloc's settings for the process.
    script = (
        "import torch\n"
        "from fusedoptim._bench import memory\n"
        "rss = memory.PeakRss()\n"
        "print(rss.problem, rss.huge_pages)\n"
        "if rss.problem is None:\n"
        "    for r in memory.calibrate(rss, 8 << 20) + [rss.measure(lambda: None)]:\n"
        "        print(r.peak_extra, r.faulted)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_package_root(), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().split("\n")
    problem, huge_pages = lines[0].split()
    if problem != "None":
        pytest.skip(f"no resettable peak RSS here: {lines[0]}")
    readings = [tuple(map(int, line.split())) for line in lines[1:]]
    # VmHWM within the kernel's per-CPU counter batching, twice (before and
    # after); the faulted pages exact (see [note: peak step memory]).
    slack = 2 * 128 * 1024 * max(2, os.cpu_count() or 1)
    for peak, faulted in readings[:3]:
        assert abs(peak - (8 << 20)) <= slack
        if huge_pages != "always":
            assert 8 << 20 <= faulted <= (8 << 20) + 64 * 1024
    peak, faulted = readings[3]
    assert peak <= slack and faulted <= 64 * 1024


def test_bench_memory_script(tmp_path):
    path = tmp_path / "memory.json"
    # The script lives in the checkout, next to tests/; the package it runs may
    # be the installed wheel (as on CI), so it is not found from there.
    script = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "bench_memory.py"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_package_root(), *sys.path]))
    done = subprocess.run(
        [sys.executable, script, "--workloads", "3x5000", "--steps", "1", "--json", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "worked example: a 1.3B-parameter model's AdamW state is 10.4 GB" in done.stdout
    data = json.loads(path.read_text())
    rows = {r["name"]: r for r in data["workloads"]["3x5000"]["optimizers"]}
    # 5000 elements: 20 blocks; codes 5000 + absmax 80 bytes per moment, step 4.
    eight = rows["fusedoptim AdamW8bit"]
    assert eight["state_bytes"] == 3 * (4 + 2 * (5000 + 80))
    assert rows["fusedoptim SGD8bit momentum"]["state_bytes"] == 3 * (5000 + 80)
    assert rows["fusedoptim AdamW"]["state_bytes"] == 3 * (4 + 8 * 5000)
    assert rows["torch.optim.AdamW for-loop"]["state_bytes"] == 3 * (4 + 8 * 5000)


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(fusedoptim.__file__))
