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

  size_t size() const { return numels.size(); }
};

}  // namespace fusedoptim
