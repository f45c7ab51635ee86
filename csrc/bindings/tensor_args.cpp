#include "bindings/tensor_args.h"

#include <cmath>

#if defined(FUSEDOPTIM_WITH_CUDA)
#include "cuda/runtime.h"
#endif

namespace py = pybind11;

namespace fusedoptim::bindings {

ops::DType dtype_from_code(int code) {
  if (code < 0 || code > 3) {
    throw py::value_error("dtype: unknown dtype code " + std::to_string(code) +
                          " (0=float32, 1=float64, 2=float16, 3=bfloat16)");
  }
  return static_cast<ops::DType>(code);
}

void check_numels(const std::vector<int64_t>& numels) {
  for (size_t i = 0; i < numels.size(); ++i) {
    if (numels[i] < 0) {
      throw py::value_error("numels[" + std::to_string(i) + "] is negative");
    }
  }
}

std::vector<void*> addresses(const std::vector<uintptr_t>& raw, const char* name,
                             const std::vector<int64_t>& numels, ops::DType dtype) {
  return addresses(raw, name, numels, ops::element_size(dtype));
}

std::vector<void*> addresses(const std::vector<uintptr_t>& raw, const char* name,
                             const std::vector<int64_t>& numels, int element_size) {
  if (raw.size() != numels.size()) {
    throw py::value_error(std::string(name) + ": expected " + std::to_string(numels.size()) +
                          " addresses (one per tensor), got " + std::to_string(raw.size()));
  }
  const uintptr_t align = static_cast<uintptr_t>(element_size);
  std::vector<void*> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == 0 && numels[i] != 0) {
      throw py::value_error(std::string(name) + "[" + std::to_string(i) + "] is a null address");
    }
    if (raw[i] % align != 0) {
      throw py::value_error(std::string(name) + "[" + std::to_string(i) +
                            "] is not aligned to its element size");
    }
    out[i] = reinterpret_cast<void*>(raw[i]);
  }
  return out;
}

void check_threads(int num_threads) {
  if (num_threads < 1) {
    throw py::value_error("num_threads must be >= 1, got " + std::to_string(num_threads));
  }
}

void check_finite(double value, const char* name) {
  if (!std::isfinite(value)) {
    throw py::value_error(std::string(name) + " must be finite, got " + std::to_string(value));
  }
}

void check_steps(const std::vector<uintptr_t>& step_addresses, int step_dtype_code, size_t count) {
  if (step_addresses.size() != count) {
    throw py::value_error("steps: expected " + std::to_string(count) + " addresses, got " +
                          std::to_string(step_addresses.size()));
  }
  if (step_dtype_code != 0 && step_dtype_code != 1) {
    throw py::value_error("step_dtype: step counters must be float32 (0) or float64 (1)");
  }
  for (size_t i = 0; i < count; ++i) {
    if (step_addresses[i] == 0) throw py::value_error("steps[" + std::to_string(i) + "] is null");
  }
}

std::vector<double> incremented_steps(const std::vector<uintptr_t>& step_addresses,
                                      int step_dtype_code) {
  std::vector<double> steps(step_addresses.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const double current = step_dtype_code == 0
                               ? double(*reinterpret_cast<const float*>(step_addresses[i]))
                               : *reinterpret_cast<const double*>(step_addresses[i]);
    steps[i] = step_dtype_code == 0 ? double(float(current + 1.0)) : current + 1.0;
  }
  return steps;
}

void store_steps(const std::vector<uintptr_t>& step_addresses, int step_dtype_code,
                 const std::vector<double>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    if (step_dtype_code == 0) {
      *reinterpret_cast<float*>(step_addresses[i]) = float(steps[i]);
    } else {
      *reinterpret_cast<double*>(step_addresses[i]) = steps[i];
    }
  }
}

void check_device_supported(int device) {
#if !defined(FUSEDOPTIM_WITH_CUDA)
  if (device >= 0) {
    throw py::value_error(
        "this fusedoptim build has no CUDA support, so CUDA tensors cannot be updated. "
        "Rebuild with nvcc on PATH: CMAKE_ARGS=\"-DFUSEDOPTIM_CUDA=ON\" pip install .");
  }
#else
  // Driver too old or device index out of range: refused here, before the
  // step counters are written.
  if (device >= 0) cuda::ensure_device_usable(device);
#endif
}

}  // namespace fusedoptim::bindings
