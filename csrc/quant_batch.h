// What one fused call of an optimizer with 8-bit state updates (see [note:
// 8-bit state] in ops/quant8.h): every tensor of a param group, as raw
// pointers. Filled and validated by the bindings (bindings/bind_quant.cpp),
// consumed by the CPU driver (cpu/quant_cpu.cpp) and the CUDA launcher
// (cuda/quant_cuda.cu). Host-only.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/storage.h"
#include "optim_batch.h"

namespace fusedoptim {

// One moment of every tensor: tensor i's codes (one per element, in the
// param's memory order) and absmax (one per block of block_size elements).
struct QuantMoments {
  std::vector<uint8_t*> codes;
  std::vector<float*> absmax;

  bool empty() const { return codes.empty(); }
};

struct Adam8bitBatch {
  ops::DType dtype = ops::DType::kFloat32;  // the params' and grads' storage type
  int64_t block_size = 256;
  std::vector<int64_t> numels;
  std::vector<void*> params;
  std::vector<const void*> grads;
  QuantMoments exp_avg;
  QuantMoments exp_avg_sq;      // the codes of sqrt(exp_avg_sq)
  QuantMoments max_exp_avg_sq;  // empty unless amsgrad
  std::vector<double> steps;    // as AdamBatch::steps
  Precision precision;          // as AdamBatch::precision (state_dtype unused)

  size_t size() const { return numels.size(); }
};

struct Sgd8bitBatch {
  ops::DType dtype = ops::DType::kFloat32;
  int64_t block_size = 256;
  std::vector<int64_t> numels;
  std::vector<void*> params;
  std::vector<const void*> grads;
  QuantMoments momentum_buffer;      // empty when momentum == 0
  std::vector<uint8_t> new_buffers;  // as SgdBatch::new_buffers
  Precision precision;

  size_t size() const { return numels.size(); }
};

}  // namespace fusedoptim
