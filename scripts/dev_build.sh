#!/usr/bin/env bash
# Development build without pip: compiles _C into build/dev and copies it next
# to the sources, so `PYTHONPATH=python pytest` tests the working tree.
# Usage: scripts/dev_build.sh [extra cmake args, e.g. -DFUSEDOPTIM_CUDA=OFF]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FUSEDOPTIM_BUILD_DIR:-build/dev}
cmake -S . -B "$build_dir" -G Ninja -Wno-dev -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v python3)" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
cp "$build_dir"/_C*.so python/fusedoptim/
