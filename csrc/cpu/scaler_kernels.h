// The per-ISA CPU kernels of the streaming scalers (fusedoptim.preprocessing):
// the statistics of a run of rows and the transform of a run of elements.
// scaler_kernels.cpp is compiled once per instruction set, like
// norm_kernels.cpp; isa_dispatch.cpp picks the table of the active build, and
// scaler_cpu.cpp splits the work over threads.
//
// Data is a row-major (rows, features) matrix of float32 or float64.
#pragma once

#include <cstdint>

#include "ops/scaler.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

// One feature's statistics over some rows. min/max are +inf/-inf until a
// non-NaN value is seen; moments.weight counts (or weighs) non-NaN values.
struct FeatureStats {
  ops::Moments moments;
  double min;
  double max;
};

// [note: tiles] The kernels vectorize over consecutive elements, not over
// rows: a tile is rows_per_tile whole rows (period = features * rows_per_tile
// elements, at least kMinPeriod), and element e of a tile always belongs to
// feature e % features. So 1 feature or 1,000 both run full vector loops, and
// per-feature parameters are stored once per tile (`period` values) and read
// in step with the data.
constexpr int64_t kMinPeriod = 128;

inline int64_t rows_per_tile(int64_t features) {
  return features >= kMinPeriod ? 1 : (kMinPeriod + features - 1) / features;
}

// The statistics pass over rows [0, rows) of `data` (already offset to the
// first row); weights (one per row, float64) may be null. The moments come out
// in shifted coordinates: their means are of x - shift[f] (min and max are
// not shifted); see [note: shifted coordinates].
struct FitRows {
  ops::DType dtype;
  const void* data;
  const double* weights;
  const double* shift;  // one value per feature
  int64_t rows;
  int64_t features;
  bool moments;  // false: only weights (counts), min and max
};

// The transform of `numel` elements starting at a tile boundary: dst[e] =
// scaler_apply(src[e], a[e % period], b[e % period]), clipped to [low, high]
// when clip. a and b hold `period` values of the math type (float when
// math_double is false, else double). src may equal dst.
struct TransformSpan {
  ops::DType dtype;
  bool math_double;
  ops::ScalerOp op;
  const void* src;
  void* dst;
  int64_t numel;
  int64_t period;
  const void* a;
  const void* b;
  bool clip;
  double low;
  double high;
};

struct ScalerKernels {
  const char* isa;
  // Merges the rows' statistics into out[0, features) (which the caller has
  // filled, e.g. with empty statistics): per-feature moments of blocks of rows
  // around a shift near their mean (see [note: shifted blocks]), merged with
  // ops::merge_moments.
  void (*fit_rows)(const FitRows& rows, FeatureStats* out);
  // Writes the span; returns whether any source element is +-inf (every
  // element is written either way).
  bool (*transform)(const TransformSpan& span);
  // Whether any of n elements is +-inf.
  bool (*has_inf)(ops::DType dtype, const void* data, int64_t n);
};

const ScalerKernels& scaler_kernels_baseline();
const ScalerKernels& scaler_kernels_avx2();
const ScalerKernels& scaler_kernels_avx512();

}  // namespace fusedoptim::cpu
