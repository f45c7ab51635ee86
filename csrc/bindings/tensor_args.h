// Argument checks shared by the bindings. Every check runs before any kernel
// writes a byte, and failures raise ValueError naming the argument.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/storage.h"

namespace fusedoptim::bindings {

ops::DType dtype_from_code(int code);

// Addresses of `count` tensors, as given by tensor.data_ptr() or
// ndarray.ctypes.data. Each must be aligned for the element type and non-null
// unless the tensor is empty.
std::vector<void*> addresses(const std::vector<uintptr_t>& raw, const char* name,
                             const std::vector<int64_t>& numels, ops::DType dtype);
// The same for elements of `element_size` bytes (uint8 codes, float absmax).
std::vector<void*> addresses(const std::vector<uintptr_t>& raw, const char* name,
                             const std::vector<int64_t>& numels, int element_size);

void check_numels(const std::vector<int64_t>& numels);
void check_threads(int num_threads);
void check_finite(double value, const char* name);

// Throws ValueError unless there are `count` non-null step counter addresses
// of a known dtype (0: float32, 1: float64).
void check_steps(const std::vector<uintptr_t>& step_addresses, int step_dtype_code, size_t count);
// Reads each tensor's step counter (a 0-dim float32/float64 CPU tensor),
// returns the values after +1 without writing them. The addresses must have
// passed check_steps (an AdamCall checks its counters once, when built).
std::vector<double> incremented_steps(const std::vector<uintptr_t>& step_addresses,
                                      int step_dtype_code);
// Writes the values returned above; call only once every check has passed.
void store_steps(const std::vector<uintptr_t>& step_addresses, int step_dtype_code,
                 const std::vector<double>& steps);

// Throws ValueError unless device < 0 (CPU) or this build has CUDA.
void check_device_supported(int device);

}  // namespace fusedoptim::bindings
