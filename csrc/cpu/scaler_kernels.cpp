// Compiled once per ISA with FUSEDOPTIM_ISA=baseline|avx2|avx512 and that
// ISA's flags (see optim_kernels.cpp). Every loop over elements runs over one
// tile (see [note: tiles]) under `omp simd`; each lane of a tile has its own
// running sums, and the lanes are folded into their features in a fixed
// order, so the statistics are bit-identical on every ISA (no build reorders
// an addition) and, with the driver's fixed chunks, for any thread count.
#include "cpu/scaler_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/isa_build.h"

namespace fusedoptim::cpu {
namespace {

using ops::DType;
using ops::Moments;
using ops::ScalerOp;

constexpr double kInf = std::numeric_limits<double>::infinity();

// [note: two passes in cache] The statistics are computed over blocks of
// about kBlockElements elements (32 KiB of float32, 64 KiB of float64: in L1
// or L2). Pass one sums each lane's weights and values (and min/max); pass two
// reads the same block again from cache and sums the deviations d = x - mean
// from the block's first mean estimate and their squares. The block's moments
// are then mean + sum(d) / n and sum(d^2) - sum(d)^2 / n (the corrected
// two-pass algorithm of Chan, Golub and LeVeque, as scikit-learn computes a
// batch): deviations are small numbers even when the values are large, so a
// feature around 1e8 with unit variance keeps its variance to about 1e-15
// relative, where a one-pass sum of squares would lose all of it. Blocks are
// merged with ops::merge_moments. Memory is read once.
//
// [note: shifted coordinates] Every value is read as x - shift, shift being
// one value of its feature from the first rows (FitRows::shift), and the
// moments stay in those coordinates until the driver adds the shift back to
// the mean. Without it, each block's mean of a feature around 1e8 would be
// rounded to 1.5e-8 (its ulp) before the merge, and the hundreds of block
// merges of a large batch would add up to a 1e-10 relative error in the
// variance; shifted means are small numbers, rounded far more finely.
// min and max are taken on the values as they are, so they stay exact.
constexpr int64_t kBlockElements = 8192;

// Running sums of one block, one entry per lane of a tile (period entries),
// plus the block's per-feature values.
struct BlockScratch {
  explicit BlockScratch(int64_t period, int64_t features)
      : lanes(8 * period), per_feature(7 * features), lane_row(period) {
    weight = lanes.data();
    sum = weight + period;
    low = sum + period;
    high = low + period;
    dev = high + period;
    dev2 = dev + period;
    mean = dev2 + period;
    shift = mean + period;
    f_weight = per_feature.data();
    f_sum = f_weight + features;
    f_dev = f_sum + features;
    f_dev2 = f_dev + features;
    f_mean = f_dev2 + features;
    f_low = f_mean + features;
    f_high = f_low + features;
    for (int64_t j = 0; j < period; ++j) lane_row[j] = j / features;
  }
  std::vector<double> lanes;
  std::vector<double> per_feature;
  std::vector<int64_t> lane_row;  // the row (within its tile) of each lane
  double *weight, *sum, *low, *high, *dev, *dev2, *mean, *shift;
  double *f_weight, *f_sum, *f_dev, *f_dev2, *f_mean, *f_low, *f_high;
};

// Pass one over n <= period elements of a tile; w points at the tile's first
// row weight (kWeighted only).
template <typename S, bool kWeighted>
void sum_tile(const S* __restrict x, const double* __restrict w, int64_t n,
              const int64_t* __restrict lane_row, const double* __restrict shift,
              double* __restrict weight, double* __restrict sum, double* __restrict low,
              double* __restrict high) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const double raw = static_cast<double>(x[j]);
    const bool present = raw == raw;  // NaN is missing: skipped, as scikit-learn skips it
    const double wj = kWeighted ? w[lane_row[j]] : 1.0;
    weight[j] += present ? wj : 0.0;
    sum[j] += present ? wj * (raw - shift[j]) : 0.0;
    low[j] = raw < low[j] ? raw : low[j];
    high[j] = raw > high[j] ? raw : high[j];
  }
}

// Pass two: weighted deviations from each lane's feature mean, and their squares.
template <typename S, bool kWeighted>
void deviate_tile(const S* __restrict x, const double* __restrict w, int64_t n,
                  const int64_t* __restrict lane_row, const double* __restrict shift,
                  const double* __restrict mean, double* __restrict dev, double* __restrict dev2) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const double raw = static_cast<double>(x[j]);
    const double d = raw == raw ? (raw - shift[j]) - mean[j] : 0.0;
    const double wd = kWeighted ? w[lane_row[j]] * d : d;
    dev[j] += wd;
    dev2[j] += wd * d;
  }
}

// Calls tile(offset, n) for each tile of a block of numel elements, the last
// one possibly partial.
template <typename Tile>
void for_each_tile(int64_t numel, int64_t period, const Tile& tile) {
  int64_t offset = 0;
  for (; offset + period <= numel; offset += period) tile(offset, period);
  if (offset < numel) tile(offset, numel - offset);
}

// Lanes -> features: feature f gets lanes f, f + features, ... in that order.
template <typename Fold>
void fold_lanes(const double* lanes, int64_t features, int64_t tile_rows, double* out,
                const Fold& fold) {
  for (int64_t f = 0; f < features; ++f) out[f] = lanes[f];
  for (int64_t r = 1; r < tile_rows; ++r) {
    const double* row = lanes + r * features;
    for (int64_t f = 0; f < features; ++f) out[f] = fold(out[f], row[f]);
  }
}

double add(double a, double b) { return a + b; }
double min_of(double a, double b) { return b < a ? b : a; }
double max_of(double a, double b) { return b > a ? b : a; }

template <typename S, bool kWeighted>
void fit_rows_typed(const FitRows& r, FeatureStats* out) {
  const int64_t features = r.features;
  const int64_t tile_rows = rows_per_tile(features);
  const int64_t period = features * tile_rows;
  const int64_t block_rows = tile_rows * std::max<int64_t>(1, kBlockElements / period);
  BlockScratch s(period, features);
  for (int64_t j = 0; j < period; ++j) s.shift[j] = r.shift[j % features];
  const S* data = static_cast<const S*>(r.data);

  for (int64_t first = 0; first < r.rows; first += block_rows) {
    const int64_t numel = std::min(block_rows, r.rows - first) * features;
    const S* x = data + first * features;
    const double* w = kWeighted ? r.weights + first : nullptr;
    std::fill(s.weight, s.weight + 2 * period, 0.0);  // weight and sum
    std::fill(s.low, s.low + period, kInf);
    std::fill(s.high, s.high + period, -kInf);
    for_each_tile(numel, period, [&](int64_t offset, int64_t n) {
      sum_tile<S, kWeighted>(x + offset, kWeighted ? w + offset / features : nullptr, n,
                             s.lane_row.data(), s.shift, s.weight, s.sum, s.low, s.high);
    });
    fold_lanes(s.weight, features, tile_rows, s.f_weight, add);
    fold_lanes(s.sum, features, tile_rows, s.f_sum, add);
    fold_lanes(s.low, features, tile_rows, s.f_low, min_of);
    fold_lanes(s.high, features, tile_rows, s.f_high, max_of);
    for (int64_t f = 0; f < features; ++f) {
      out[f].min = min_of(out[f].min, s.f_low[f]);
      out[f].max = max_of(out[f].max, s.f_high[f]);
    }
    if (!r.moments) {
      for (int64_t f = 0; f < features; ++f) out[f].moments.weight += s.f_weight[f];
      continue;
    }

    for (int64_t f = 0; f < features; ++f) {
      s.f_mean[f] = s.f_weight[f] != 0.0 ? s.f_sum[f] / s.f_weight[f] : 0.0;
    }
    for (int64_t j = 0; j < period; ++j) s.mean[j] = s.f_mean[j % features];
    std::fill(s.dev, s.dev + 2 * period, 0.0);  // dev and dev2
    for_each_tile(numel, period, [&](int64_t offset, int64_t n) {
      deviate_tile<S, kWeighted>(x + offset, kWeighted ? w + offset / features : nullptr, n,
                                 s.lane_row.data(), s.shift, s.mean, s.dev, s.dev2);
    });
    fold_lanes(s.dev, features, tile_rows, s.f_dev, add);
    fold_lanes(s.dev2, features, tile_rows, s.f_dev2, add);
    for (int64_t f = 0; f < features; ++f) {
      const double n = s.f_weight[f];
      if (n == 0.0) continue;
      const double correction = s.f_dev[f] / n;
      const Moments block{n, s.f_mean[f] + correction, s.f_dev2[f] - s.f_dev[f] * correction};
      out[f].moments = ops::merge_moments(out[f].moments, block);
    }
  }
}

void fit_rows(const FitRows& r, FeatureStats* out) {
  const bool weighted = r.weights != nullptr;
  if (r.dtype == DType::kFloat32) {
    return weighted ? fit_rows_typed<float, true>(r, out) : fit_rows_typed<float, false>(r, out);
  }
  return weighted ? fit_rows_typed<double, true>(r, out) : fit_rows_typed<double, false>(r, out);
}

template <ScalerOp kOp, typename S, typename M, bool kClip>
int transform_tile(const S* src, S* dst, int64_t n, const M* __restrict a, const M* __restrict b,
                   S low, S high) {
  // src and dst may be the same array (in place): each element is read before
  // it is written, in the same iteration, so the loop is still one pass.
  int found_inf = 0;
#pragma omp simd reduction(| : found_inf)
  for (int64_t j = 0; j < n; ++j) {
    const S x = src[j];
    found_inf |= ops::math_abs(x) == std::numeric_limits<S>::infinity() ? 1 : 0;
    S y = ops::scaler_apply<kOp, S, M>(x, a[j], b[j]);
    if (kClip) y = ops::scaler_clip(y, low, high);
    dst[j] = y;
  }
  return found_inf;
}

template <ScalerOp kOp, typename S, typename M, bool kClip>
bool transform_typed(const TransformSpan& t) {
  const S* src = static_cast<const S*>(t.src);
  S* dst = static_cast<S*>(t.dst);
  const M* a = static_cast<const M*>(t.a);
  const M* b = static_cast<const M*>(t.b);
  const S low = static_cast<S>(t.low);
  const S high = static_cast<S>(t.high);
  int found_inf = 0;
  for_each_tile(t.numel, t.period, [&](int64_t offset, int64_t n) {
    found_inf |= transform_tile<kOp, S, M, kClip>(src + offset, dst + offset, n, a, b, low, high);
  });
  return found_inf != 0;
}

template <typename S, typename M>
bool transform_math(const TransformSpan& t) {
  if (t.op == ScalerOp::kSubtractDivide) {
    return t.clip ? transform_typed<ScalerOp::kSubtractDivide, S, M, true>(t)
                  : transform_typed<ScalerOp::kSubtractDivide, S, M, false>(t);
  }
  return t.clip ? transform_typed<ScalerOp::kMultiplyAdd, S, M, true>(t)
                : transform_typed<ScalerOp::kMultiplyAdd, S, M, false>(t);
}

bool transform(const TransformSpan& t) {
  if (t.dtype == DType::kFloat64) return transform_math<double, double>(t);
  return t.math_double ? transform_math<float, double>(t) : transform_math<float, float>(t);
}

template <typename S>
bool has_inf_typed(const void* data, int64_t n) {
  const S* x = static_cast<const S*>(data);
  int found_inf = 0;
#pragma omp simd reduction(| : found_inf)
  for (int64_t i = 0; i < n; ++i) {
    found_inf |= ops::math_abs(x[i]) == std::numeric_limits<S>::infinity() ? 1 : 0;
  }
  return found_inf != 0;
}

bool has_inf(DType dtype, const void* data, int64_t n) {
  return dtype == DType::kFloat64 ? has_inf_typed<double>(data, n) : has_inf_typed<float>(data, n);
}

}  // namespace

const ScalerKernels& FUSEDOPTIM_ISA_ENTRY(scaler_kernels_)() {
  static const ScalerKernels kernels{FUSEDOPTIM_ISA_NAME, &fit_rows, &transform, &has_inf};
  return kernels;
}

}  // namespace fusedoptim::cpu
