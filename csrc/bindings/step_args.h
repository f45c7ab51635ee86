// What every fused step binding does with its arguments, shared by the float
// state calls (bind_optim.cpp) and the 8-bit state calls (bind_quant.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "ops/storage.h"
#include "optim_batch.h"

namespace fusedoptim::bindings {

// Which of a GradWatch's planned grads a call updates, in call order (empty:
// all of them, in order); throws ValueError unless one per tensor.
std::vector<int64_t> checked_positions(const std::vector<int64_t>& positions, size_t count);

// This step's grad addresses, in call order: a list of addresses, or the
// grads a GradWatch has just collected (picked by `positions`).
std::vector<const void*> grad_addresses(pybind11::handle grads,
                                        const std::vector<int64_t>& positions,
                                        const std::vector<int64_t>& numels, ops::DType dtype);

void check_finite_all(std::initializer_list<std::pair<double, const char*>> values);

// _C.CallPrecision: the mixed-precision arguments of a call, as Python gives
// them (see checked_precision); default-constructed for the plain case.
struct PrecisionArgs {
  int grad_dtype = -1;
  int state_dtype = -1;
  std::vector<uintptr_t> param_copies;
  int copy_dtype = -1;
  std::vector<int64_t> streams;  // per tensor: its stream of random bits
};

// A call's mixed precision, checked (see Precision in optim_batch.h): the
// grads' dtype (-1: the params'), the float moments' (-1: the params'), the
// half-precision params written from fp32 masters (empty: no master weights)
// and their dtype. Refuses combinations the kernels do not run: float64 mixed
// with any other type, copies of a dtype other than fp16/bf16 or of params
// that are not fp32 masters.
Precision checked_precision(ops::DType dtype, const PrecisionArgs& args,
                            const std::vector<int64_t>& numels);

// Sets this step's stochastic rounding: the keys of ops::stream_key(seed,
// streams[i], steps[i]) (streams: each tensor's position in its optimizer).
// Refuses it for params that are not bf16.
void set_stochastic_round(Precision* precision, ops::DType dtype, bool stochastic_round,
                          uint64_t seed, const std::vector<int64_t>& streams,
                          const std::vector<double>& steps);

// SGD's step counters, read only for stochastic rounding (torch's SGD counts
// no steps): their values after +1, or none when the call keeps no counters;
// refuses stochastic rounding without them.
std::vector<double> sgd_incremented_steps(const std::vector<uintptr_t>& step_addresses,
                                          int step_dtype_code, bool stochastic_round);

// Runs a kernel launch without the GIL. Callers write the step's bookkeeping
// (step counters, new-buffer flags) only after it returns, so a launch that
// throws before any kernel has written (an allocation, a refused first CUDA
// launch) leaves the step uncounted, as if it had not been taken. A CUDA
// failure after some kernels were queued leaves a partly updated step that no
// bookkeeping can repair.
template <typename Launch>
void launch_without_gil(const Launch& launch) {
  pybind11::gil_scoped_release release;
  launch();
}

}  // namespace fusedoptim::bindings
