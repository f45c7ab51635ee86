// Compiled once per ISA with FUSEDOPTIM_ISA=baseline|avx2|avx512 and that
// ISA's flags (see optim_kernels.cpp). `-fopt-info-vec` confirms that the
// reduction loops of every mode except kLp (a pow per element, left scalar)
// and the scale loop are vectorized on each ISA.
//
// [note: fixed lanes] A reduction keeps kLanes running sums, element i going
// to lane i % kLanes, and folds the lanes in a fixed tree at the end. The
// lanes map onto vector registers of any width (2 x 8 doubles on AVX-512,
// 4 x 4 on AVX2, 8 x 2 on SSE2), so every build adds the same numbers in the
// same order: the result is bit-identical across ISAs, and, with the
// driver's fixed chunks, across thread counts. A plain `omp simd reduction`
// would let each build pick its own order.
#include "cpu/norm_kernels.h"

#include "cpu/isa_build.h"

namespace fusedoptim::cpu {
namespace {

using ops::BFloat16;
using ops::DType;
using ops::Half;
using ops::MathType;
using ops::NormMode;
using ops::NormSums;

constexpr int kLanes = 16;

template <NormMode kMode, typename S>
NormSums reduce_span(const void* data, int64_t n, double p) {
  constexpr bool kSecond = kMode == NormMode::kL1AndL2;
  const S* __restrict x = static_cast<const S*>(data);
  double first[kLanes];
  double second[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) first[lane] = second[lane] = 0.0;
  const int64_t full = n - n % kLanes;
  for (int64_t i = 0; i < full; i += kLanes) {
#pragma omp simd
    for (int lane = 0; lane < kLanes; ++lane) {
      const double v = double(ops::load(x + i + lane));
      first[lane] = ops::norm_fold<kMode>(first[lane], ops::norm_term<kMode>(v, p));
      if (kSecond) second[lane] = second[lane] + ops::norm_second_term(v);
    }
  }
  for (int64_t i = full; i < n; ++i) {
    const double v = double(ops::load(x + i));
    const int64_t lane = i - full;
    first[lane] = ops::norm_fold<kMode>(first[lane], ops::norm_term<kMode>(v, p));
    if (kSecond) second[lane] = second[lane] + ops::norm_second_term(v);
  }
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int lane = 0; lane < width; ++lane) {
      first[lane] = ops::norm_fold<kMode>(first[lane], first[lane + width]);
      second[lane] = second[lane] + second[lane + width];
    }
  }
  return {first[0], second[0]};
}

template <typename S>
NormSums reduce_typed(NormMode mode, double p, const void* data, int64_t n) {
  switch (mode) {
    case NormMode::kL1:
      return reduce_span<NormMode::kL1, S>(data, n, p);
    case NormMode::kL2:
      return reduce_span<NormMode::kL2, S>(data, n, p);
    case NormMode::kL2Squared:
      return reduce_span<NormMode::kL2Squared, S>(data, n, p);
    case NormMode::kLp:
      return reduce_span<NormMode::kLp, S>(data, n, p);
    case NormMode::kInf:
      return reduce_span<NormMode::kInf, S>(data, n, p);
    case NormMode::kL1AndL2:
      return reduce_span<NormMode::kL1AndL2, S>(data, n, p);
  }
  return {0.0, 0.0};
}

template <typename S>
void scale_span(void* data, int64_t n, double coef) {
  using M = MathType<S>;
  const M c = static_cast<M>(coef);
  S* __restrict x = static_cast<S*>(data);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) ops::store(x + i, ops::scaled(ops::load(x + i), c));
}

NormSums reduce(DType dtype, NormMode mode, double p, const void* data, int64_t n) {
  switch (dtype) {
    case DType::kFloat32:
      return reduce_typed<float>(mode, p, data, n);
    case DType::kFloat64:
      return reduce_typed<double>(mode, p, data, n);
    case DType::kFloat16:
      return reduce_typed<Half>(mode, p, data, n);
    case DType::kBFloat16:
      return reduce_typed<BFloat16>(mode, p, data, n);
  }
  return {0.0, 0.0};
}

void scale(DType dtype, void* data, int64_t n, double coef) {
  switch (dtype) {
    case DType::kFloat32:
      return scale_span<float>(data, n, coef);
    case DType::kFloat64:
      return scale_span<double>(data, n, coef);
    case DType::kFloat16:
      return scale_span<Half>(data, n, coef);
    case DType::kBFloat16:
      return scale_span<BFloat16>(data, n, coef);
  }
}

}  // namespace

const NormKernels& FUSEDOPTIM_ISA_ENTRY(norm_kernels_)() {
  static const NormKernels kernels{FUSEDOPTIM_ISA_NAME, &reduce, &scale};
  return kernels;
}

}  // namespace fusedoptim::cpu
