#!/usr/bin/env bash
# The GPU check, in one run, for a machine with an NVIDIA GPU, nvcc and a CUDA
# build of torch (no network needed):
#   1. build the wheel with CUDA for this GPU's architecture and install it in a
#      venv that sees the system's torch
#   2. run the CUDA tests (a missing CUDA build fails instead of skipping) and
#      the chunk planner tests against the installed package
#   3. a short benchmark: fusedoptim vs torch.optim foreach and fused, GB/s
#      against the card's measured copy bandwidth
# Logs and the benchmark JSON go to $OUT (the device tool's output folder) or
# bench_results/gpu_check/.
#
#   benchmarks/gpu_check.sh            # this GPU's architecture only (fast)
#   ARCHS=default benchmarks/gpu_check.sh   # the full default architecture list
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench_results/gpu_check}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || true
nvcc --version | tail -2
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)
assert torch.cuda.is_available(), 'torch sees no CUDA device'"

arch="${ARCHS:-$(python3 -c "import torch; print('%d%d' % torch.cuda.get_device_capability())")}"
cmake_args="-DFUSEDOPTIM_CUDA=ON"
if [[ "$arch" != "default" ]]; then
  cmake_args+=" -DFUSEDOPTIM_CUDA_ARCHITECTURES=$arch"
fi

echo "== build the wheel ($cmake_args)"
venv="$(mktemp -d)/venv"
python3 -m venv --system-site-packages "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
rm -rf build/cp3* dist
start=$(date +%s)
if python -c "import scikit_build_core, pybind11" 2>/dev/null; then
  # Offline-friendly: the build backend from the system instead of an isolated env.
  CMAKE_ARGS="$cmake_args" python -m pip wheel . --no-deps --no-build-isolation -w dist
else
  CMAKE_ARGS="$cmake_args" python -m pip wheel . --no-deps -w dist
fi
echo "wheel built in $(($(date +%s) - start)) s"
python -m pip install --no-deps --force-reinstall dist/fusedoptim-*.whl
python -c "import fusedoptim, json; print(json.dumps(fusedoptim.info(), indent=1, default=str))" \
  | tee "$out/info.json"

echo "== tests (installed package)"
# python/ is not on sys.path from the repository root: the tests import the wheel.
FUSEDOPTIM_REQUIRE_CUDA=1 python -m pytest tests/test_cuda.py tests/test_cuda_chunk_plan.py \
  -q -p no:cacheprovider --junitxml="$out/cuda_tests.xml" || status=$?

echo "== benchmark"
python benchmarks/bench_cuda.py --repeats 30 --out "$out/bench_cuda.json"
exit "${status:-0}"
