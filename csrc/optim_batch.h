// What one fused optimizer call updates: every tensor of a param group, as
// raw pointers. Filled and validated by the bindings, consumed by the CPU
// driver (cpu/optim_cpu.cpp) and the CUDA launcher (cuda/). Host-only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/storage.h"

namespace fusedoptim {

// The distinct values of `steps`, in first-seen order; (*index)[i] is value i's
// position among them. The CPU driver and the CUDA launcher build one set of
// bias-corrected scalars per distinct step value.
inline std::vector<double> distinct_steps(const std::vector<double>& steps,
                                          std::vector<int32_t>* index) {
  std::vector<double> distinct;
  index->resize(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    auto it = std::find(distinct.begin(), distinct.end(), steps[i]);
    (*index)[i] = static_cast<int32_t>(it - distinct.begin());
    if (it == distinct.end()) distinct.push_back(steps[i]);
  }
  return distinct;
}

// A call's mixed precision (see [note: staged blocks] in cpu/optim_kernels.cpp);
// by default every tensor has the params' dtype and params round to nearest.
struct Precision {
  ops::DType grad_dtype = ops::DType::kFloat32;   // the grads' storage type
  ops::DType state_dtype = ops::DType::kFloat32;  // the float moments' (not 8-bit ones)
  // Master weights: the params above are the fp32 masters, and these the
  // half-precision params written from them in the same pass (empty: none).
  std::vector<void*> param_copies;
  ops::DType copy_dtype = ops::DType::kFloat32;
  bool stochastic_round = false;  // bf16 params rounded with ops/random.h's bits
  std::vector<uint32_t> keys;     // per tensor: this step's key (ops::stream_key)
};

struct AdamBatch {
  ops::DType dtype = ops::DType::kFloat32;
  std::vector<int64_t> numels;
  std::vector<void*> params;
  std::vector<const void*> grads;
  std::vector<void*> exp_avgs;
  std::vector<void*> exp_avg_sqs;
  std::vector<void*> max_exp_avg_sqs;  // empty unless amsgrad
  // Each tensor's step count after this step's increment. Tensors of one group
  // normally share it; the kernels group tensors by value, so a param added
  // mid-training (or loaded from another run) still gets its own bias
  // corrections, exactly as torch.optim does.
  std::vector<double> steps;
  Precision precision;

  size_t size() const { return numels.size(); }
};

struct SgdBatch {
  ops::DType dtype = ops::DType::kFloat32;
  std::vector<int64_t> numels;
  std::vector<void*> params;
  std::vector<const void*> grads;
  std::vector<void*> momentum_buffers;  // empty when momentum == 0
  // Per tensor: 1 when its momentum buffer is created by this step (torch sets
  // buf = grad then), 0 when it is updated.
  std::vector<uint8_t> new_buffers;
  Precision precision;

  size_t size() const { return numels.size(); }
};

}  // namespace fusedoptim
