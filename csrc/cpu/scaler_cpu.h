// The CPU driver of the streaming scalers (fusedoptim.preprocessing): one
// parallel region per call over fixed chunks of rows of a row-major
// (rows, features) float32/float64 matrix, running the per-ISA kernels of
// scaler_kernels.h.
#pragma once

#include <cstdint>

#include "cpu/scaler_kernels.h"
#include "ops/scaler.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

struct ScalerFitInput {
  ops::DType dtype;
  const void* data;
  const double* weights;  // one per row, or null
  int64_t rows;
  int64_t features;
  bool moments;  // false: only counts, min and max
  // One value per feature; the means come out relative to it (see [note:
  // shifted coordinates] in scaler_kernels.cpp). With choose_shift, the driver
  // first writes its own choice there: each feature's first finite value in
  // the first rows, else 0.
  double* shift;
  bool choose_shift;
};

// The statistics of every row: stats[0, features) is overwritten, with means
// relative to input.shift. Returns -1, or the index of the first +-inf element
// (stats are then unspecified). The result is the same for any thread count
// and kernel build.
int64_t scaler_fit(const ScalerFitInput& input, FeatureStats* stats, int num_threads);

// into[f] <- into[f] merged with other[f] (ops::merge_moments, min, max).
void scaler_merge(FeatureStats* into, const FeatureStats* other, int64_t features);

struct ScalerTransformInput {
  ops::DType dtype;
  bool math_double;  // compute in double (and round to dtype after each operation)
  ops::ScalerOp op;
  const void* src;
  void* dst;  // may equal src
  int64_t rows;
  int64_t features;
  const double* a;  // features values each, rounded to the math type here
  const double* b;
  bool clip;
  double low;
  double high;
};

// dst <- op(src). Returns -1, or the index of the first +-inf element of src.
// When src == dst, src is checked first and nothing is written if it holds an
// inf; otherwise the check is fused into the one pass, and dst is written
// either way.
int64_t scaler_transform(const ScalerTransformInput& input, int num_threads);

}  // namespace fusedoptim::cpu
