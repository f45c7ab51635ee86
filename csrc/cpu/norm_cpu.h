// The CPU multi-tensor driver of the norms and of gradient clipping's scale
// pass: one parallel region per call over fixed-size chunks drawn from every
// tensor, whatever their dtypes.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/norms.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

// Tensors in host memory, each dense (its elements fill numels[i] slots from
// data[i]), each with its own dtype.
struct NormBatch {
  std::vector<ops::DType> dtypes;
  std::vector<int64_t> numels;
  std::vector<void*> data;

  size_t size() const { return numels.size(); }
};

// The norm(s) of all elements of the batch taken as one vector (see
// ops::NormMode), finished (rooted). The same value for any thread count.
ops::NormSums norm(const NormBatch& batch, ops::NormMode mode, double p, int num_threads);

// Multiplies every element by coef, in each tensor's math type.
void scale(const NormBatch& batch, double coef, int num_threads);

}  // namespace fusedoptim::cpu
