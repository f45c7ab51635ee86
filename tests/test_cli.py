"""The fusedoptim command (fusedoptim.cli) and the benchmark engine behind
`fusedoptim bench`: exit codes, output, JSON. Pass/fail on correctness only;
nothing here asserts a speed."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

import fusedoptim
from fusedoptim._bench import training_loop, workloads
from fusedoptim.cli import main

TINY_BENCH = ["--workloads", "3x1000", "--rounds", "2", "--warmup", "0", "--quiet"]


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    info = fusedoptim.info()
    assert f"fusedoptim {info['version']}" in out
    assert info["isa_active"] in out
    assert "CUDA" in out


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == fusedoptim.__version__
    assert data["isa_active"] in data["isas_compiled"]
    # torch's CPU builds load an OpenMP runtime; the step borrows its team.
    omp = "OpenMP" in torch.__config__.parallel_info()
    assert data["parallel_backend"].startswith("openmp") == omp


def test_python_dash_m_runs_the_command():
    package_root = os.path.dirname(os.path.dirname(fusedoptim.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_root, *sys.path]))
    done = subprocess.run(
        [sys.executable, "-m", "fusedoptim", "info", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == fusedoptim.__version__


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["bench", "--workloads", "nonsense"]) == 2
    assert main(["bench", "--optimizers", "lamb"]) == 2
    assert main(["bench", "--dtypes", "fp8"]) == 2
    assert main(["bench", "--threads", "0", *TINY_BENCH]) == 2
    assert "unknown workload 'nonsense'" in capsys.readouterr().err


def test_version_and_help_exit_0(capsys):
    assert main(["--version"]) == 0
    assert fusedoptim.__version__ in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0


def test_bench_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    args = ["bench", *TINY_BENCH, "--optimizers", "sgd,adam", "--dtypes", "fp32,bf16"]
    assert main([*args, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "vs fused" in out
    data = json.loads(path.read_text())
    assert data["schema"] == "fusedoptim-bench/1"
    cases = {(c["optimizer"], c["dtype"]): c for c in data["cases"]}
    assert set(cases) == {("sgd", "fp32"), ("sgd", "bf16"), ("adam", "fp32"), ("adam", "bf16")}
    adam = cases["adam", "fp32"]
    assert adam["numel"] == 3000 and adam["num_tensors"] == 3
    assert adam["bytes_per_step"] == 3000 * 28
    assert cases["adam", "bf16"]["bytes_per_step"] == 3000 * 14
    assert cases["sgd", "fp32"]["bytes_per_step"] == 3000 * 12
    timed = adam["implementations"]
    for name in ("fusedoptim", "torch for-loop", "torch foreach", "torch fused", "plain C loop"):
        assert timed[name]["runs"] == 2
        assert 0 < timed[name]["min_ms"] <= timed[name]["median_ms"] <= timed[name]["max_ms"]
    assert timed["fusedoptim"]["fusedoptim_speedup"] == 1.0
    assert adam["limit_gbps"] > 0
    assert "plain C loop" in cases["adam", "bf16"]["skipped"]


def test_bench_plot_is_optional(tmp_path, capsys):
    path = tmp_path / "bench.png"
    args = ["bench", *TINY_BENCH, "--optimizers", "sgd", "--dtypes", "fp32"]
    assert main([*args, "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    if importlib.util.find_spec("matplotlib") is None:
        assert "plot skipped: matplotlib is not installed" in out
        assert not path.exists()
    else:
        assert path.stat().st_size > 0


def test_bench_forced_isa_and_threads(capsys):
    fusedoptim_isas = fusedoptim.info()["isas_compiled"]
    args = ["bench", *TINY_BENCH, "--optimizers", "adamw", "--dtypes", "fp32", "--details"]
    assert main([*args, "--isa", fusedoptim_isas[0], "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"kernels: {fusedoptim_isas[0]}, 1 threads" in out
    assert "bandwidth limit (probe)" in out


def test_training_loop_engine():
    settings = training_loop.LoopSettings(layers=2, width=32, batch=4, rounds=2, block=2, warmup=1)
    result = training_loop.run(settings)
    for r in result["implementations"].values():
        assert r["runs"] == 4
        assert 0 < r["step_share_of_iteration"] < 1
    assert "in loop vs alone" in training_loop.format_result(result)


def test_demo_runs(capsys):
    pytest.importorskip("sklearn")
    assert main(["demo", "--epochs", "2", "--timing-steps", "3", "--hidden", "32"]) == 0
    out = capsys.readouterr().out
    for text in ("test accuracy", "test macro F1", "confusion matrix", "L1 sparsity"):
        assert text in out
    assert "torch.optim.AdamW (default)" in out


def test_demo_without_scikit_learn_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    assert main(["demo"]) == 1
    assert "pip install scikit-learn" in capsys.readouterr().err


def test_workload_shapes():
    gpt2 = workloads.parse("gpt2")
    assert (gpt2.num_tensors, gpt2.numel) == (148, 124_439_808)
    resnet = workloads.parse("resnet50")
    assert (resnet.num_tensors, resnet.numel) == (161, 25_557_032)
    assert workloads.parse("16M").shapes == ((16_000_000,),)
    assert workloads.parse("500x1000").numel == 500_000
    assert workloads.parse("2x3k").shapes == ((3000,), (3000,))
    for bad in ("0x10", "x10", "10G", ""):
        with pytest.raises(ValueError, match="unknown workload"):
            workloads.parse(bad)
