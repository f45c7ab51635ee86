// Compiled once per ISA with FUSEDOPTIM_ISA=baseline|avx2|avx512 and that
// ISA's flags (see optim_kernels.cpp). The loops over elements run over tiles
// (see [note: tiles]) under `omp simd`; each lane of a tile has its own running
// sums, and the lanes are folded into their features in a fixed order, so the
// statistics are bit-identical on every ISA (no build reorders an addition)
// and, with the driver's fixed chunks, for any thread count.
#include "cpu/scaler_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/isa_build.h"

namespace fusedoptim::cpu {
namespace {

using ops::DType;
using ops::Moments;
using ops::ScalerOp;

constexpr double kInf = std::numeric_limits<double>::infinity();

// [note: shifted blocks] The statistics pass reads its rows in blocks of
// about kBlockElements elements (64 KiB of float32: in L2). For each
// block it sums, per feature, the weights, and the deviations d = x - shift
// and their squares in double, shift being a value near the feature's mean:
// the block's moments are then mean = shift + sum(d) / n and
// m2 = sum(d^2) - sum(d)^2 / n. Deviations are small numbers even when the
// values are large, so a feature around 1e8 with unit variance keeps its
// variance to about 1e-15 relative, where sums of x and x^2 would lose all of
// it. The relative error of m2 grows as eps * (1 + z^2), z being the distance
// from the shift to the block's mean in standard deviations; so when z^2
// exceeds kRedoRatio for some feature (the first block, whose shift is one
// value from the first rows; or data sorted by that feature, whose mean moves
// from block to block), the block is read again, from cache, with its own
// mean as the shift: the corrected two-pass algorithm of Chan, Golub and
// LeVeque, as scikit-learn computes a batch. Later blocks take the running
// mean as their shift, so on data in no particular order one read of memory
// suffices. Blocks merge into the chunk's moments with ops::merge_moments.
//
// [note: shifted coordinates] The moments are kept relative to one value per
// feature (FitRows::shift), the same for every chunk and, in
// fusedoptim.preprocessing, for every batch a scaler sees (its first batch's
// first values): a mean around 1e8 would otherwise be rounded to 1.5e-8 (its
// ulp) at every merge, and the hundreds of merges of blocks, chunks and
// batches would add up to a 1e-10 relative error in the variance, more on
// sorted data. The absolute mean is formed once, when the attributes are
// read. min and max are taken on the values as they are: they stay exact.
constexpr int64_t kBlockElements = 16384;
constexpr double kRedoRatio = 64.0;

// [note: lane groups] A block's full tiles run one group of kGroup lanes at a
// time (a few vector registers wide), tile after tile, with the group's
// running values held in registers; only the lanes past the last whole group
// and the block's last, partial tile keep them in memory. Either way a lane
// adds its tiles in tile order, so the result does not depend on the width.
#if defined(__AVX512F__)
constexpr int64_t kGroup = 16;
#elif defined(__AVX2__)
constexpr int64_t kGroup = 8;
#else
constexpr int64_t kGroup = 4;
#endif

// One element's contribution to its lane. NaN is missing: it adds no weight
// and no deviation, and fails both comparisons of min and max. In registers,
// min and max are kept in the data's own type (L), and unweighted counts too
// (C): a block counts at most kBlockElements per lane, exact in float, so
// either way the sums are the same numbers.
template <bool kMoments, typename C, typename L>
inline void accumulate(double raw, L value, double w, double shift, C& weight, double& s1,
                       double& s2, L& low, L& high) {
  const bool present = raw == raw;
  weight += present ? static_cast<C>(w) : C(0);
  if (kMoments) {
    const double d = present ? raw - shift : 0.0;
    const double wd = w * d;
    s1 += wd;
    s2 += wd * d;
  }
  low = value < low ? value : low;
  high = value > high ? value : high;
}

// Per-lane running values of a block: period entries each.
struct LaneSums {
  double* weight;
  double* s1;
  double* s2;
  double* low;
  double* high;
};

// A block of rows: its data and per-lane constants.
template <typename S>
struct Block {
  const S* x;
  const double* w;  // row weights from the block's first row, or null
  int64_t period;
  int64_t tile_rows;
  const int64_t* lane_row;  // the row within its tile of each lane
  const double* shift;      // per lane

  template <bool kWeighted>
  double weight_of(int64_t tile, int64_t lane) const {
    return kWeighted ? w[tile * tile_rows + lane_row[lane]] : 1.0;
  }
};

// Lanes [first, first + n) of tiles [t0, t1), running values in memory.
template <typename S, bool kWeighted, bool kMoments>
void lanes_pass(const Block<S>& b, int64_t t0, int64_t t1, int64_t first, int64_t n, LaneSums s) {
  for (int64_t t = t0; t < t1; ++t) {
    const S* xt = b.x + t * b.period;
#pragma omp simd
    for (int64_t j = first; j < first + n; ++j) {
      const double raw = static_cast<double>(xt[j]);
      accumulate<kMoments>(raw, raw, b.template weight_of<kWeighted>(t, j), b.shift[j], s.weight[j],
                           s.s1[j], s.s2[j], s.low[j], s.high[j]);
    }
  }
}

// Lanes [first, first + kGroup) of tiles [0, tiles), running values in
// registers. Kept out of line: inlined into the block loop, gcc turned the
// group's selects into branches and left the loop scalar.
template <typename S, bool kWeighted, bool kMoments>
__attribute__((noinline)) void group_pass(const Block<S>& b, int64_t tiles, int64_t first,
                                          LaneSums s) {
  using Count = std::conditional_t<kWeighted, double, S>;
  Count weight[kGroup];
  double s1[kGroup], s2[kGroup], shift[kGroup];
  S low[kGroup], high[kGroup];
  for (int64_t l = 0; l < kGroup; ++l) {
    weight[l] = static_cast<Count>(s.weight[first + l]);
    s1[l] = s.s1[first + l];
    s2[l] = s.s2[first + l];
    shift[l] = b.shift[first + l];
    low[l] = static_cast<S>(s.low[first + l]);
    high[l] = static_cast<S>(s.high[first + l]);
  }
  for (int64_t t = 0; t < tiles; ++t) {
    const S* xt = b.x + t * b.period + first;
#pragma omp simd
    for (int64_t l = 0; l < kGroup; ++l) {
      accumulate<kMoments>(static_cast<double>(xt[l]), xt[l],
                           b.template weight_of<kWeighted>(t, first + l), shift[l], weight[l],
                           s1[l], s2[l], low[l], high[l]);
    }
  }
  for (int64_t l = 0; l < kGroup; ++l) {
    s.weight[first + l] = static_cast<double>(weight[l]);
    s.s1[first + l] = s1[l];
    s.s2[first + l] = s2[l];
    s.low[first + l] = static_cast<double>(low[l]);
    s.high[first + l] = static_cast<double>(high[l]);
  }
}

// One read of a block of numel elements into fresh lane sums.
template <typename S, bool kWeighted, bool kMoments>
void block_pass(const Block<S>& b, int64_t numel, LaneSums s) {
  std::fill(s.weight, s.weight + b.period, 0.0);
  std::fill(s.s1, s.s1 + b.period, 0.0);
  std::fill(s.s2, s.s2 + b.period, 0.0);
  std::fill(s.low, s.low + b.period, kInf);
  std::fill(s.high, s.high + b.period, -kInf);
  const int64_t tiles = numel / b.period;
  int64_t first = 0;
  for (; first + kGroup <= b.period; first += kGroup) {
    group_pass<S, kWeighted, kMoments>(b, tiles, first, s);
  }
  if (first < b.period) {
    lanes_pass<S, kWeighted, kMoments>(b, 0, tiles, first, b.period - first, s);
  }
  const int64_t rest = numel - tiles * b.period;
  if (rest > 0) lanes_pass<S, kWeighted, kMoments>(b, tiles, tiles + 1, 0, rest, s);
}

// Lanes -> features: feature f gets lanes f, f + features, ... in that order.
template <typename Fold>
void fold_lanes(const double* lanes, int64_t features, int64_t tile_rows, double* out,
                const Fold& fold) {
  std::copy(lanes, lanes + features, out);
  for (int64_t r = 1; r < tile_rows; ++r) {
    const double* row = lanes + r * features;
    for (int64_t f = 0; f < features; ++f) out[f] = fold(out[f], row[f]);
  }
}

double add(double a, double b) { return a + b; }
double min_of(double a, double b) { return b < a ? b : a; }
double max_of(double a, double b) { return b > a ? b : a; }

// Everything one call of fit_rows needs besides the data.
struct FitScratch {
  FitScratch(int64_t period, int64_t features)
      : lanes(6 * static_cast<size_t>(period)),
        lane_row(static_cast<size_t>(period)),
        per_feature(13 * static_cast<size_t>(features)) {
    sums = {lanes.data(), lanes.data() + period, lanes.data() + 2 * period,
            lanes.data() + 3 * period, lanes.data() + 4 * period};
    lane_shift = lanes.data() + 5 * period;
    double* p = per_feature.data();
    for (double** field : {&weight, &s1, &s2, &low, &high, &block_shift, &mean, &m2, &redo,
                           &chunk_weight, &chunk_mean, &chunk_m2, &spare}) {
      *field = p;
      p += features;
    }
  }
  std::vector<double> lanes;
  std::vector<int64_t> lane_row;
  std::vector<double> per_feature;
  LaneSums sums;
  double* lane_shift;
  // Per feature: the block's folded sums, its shift, mean (relative to the
  // shift) and m2, whether to read it again; the chunk's moments so far.
  double *weight, *s1, *s2, *low, *high, *block_shift, *mean, *m2, *redo;
  double *chunk_weight, *chunk_mean, *chunk_m2, *spare;
};

template <typename S, bool kWeighted, bool kMoments>
void fit_rows_typed(const FitRows& r, FeatureStats* out) {
  const int64_t features = r.features;
  const int64_t tile_rows = rows_per_tile(features);
  const int64_t period = features * tile_rows;
  const int64_t block_rows = tile_rows * std::max<int64_t>(1, kBlockElements / period);
  FitScratch s(period, features);
  for (int64_t j = 0; j < period; ++j) s.lane_row[j] = j / features;
  std::copy(r.shift, r.shift + features, s.block_shift);
  std::fill(s.chunk_weight, s.chunk_weight + 3 * features, 0.0);  // weight, mean, m2
  const S* data = static_cast<const S*>(r.data);

  // Reads the block, folds its lanes and finds its moments relative to block_shift.
  auto measure = [&](const Block<S>& block, int64_t numel) {
    for (int64_t row = 0; row < tile_rows; ++row) {
      std::copy(s.block_shift, s.block_shift + features, s.lane_shift + row * features);
    }
    block_pass<S, kWeighted, kMoments>(block, numel, s.sums);
    fold_lanes(s.sums.weight, features, tile_rows, s.weight, add);
    fold_lanes(s.sums.low, features, tile_rows, s.low, min_of);
    fold_lanes(s.sums.high, features, tile_rows, s.high, max_of);
    if (!kMoments) return false;
    fold_lanes(s.sums.s1, features, tile_rows, s.s1, add);
    fold_lanes(s.sums.s2, features, tile_rows, s.s2, add);
    bool again = false;
    for (int64_t f = 0; f < features; ++f) {
      const double n = s.weight[f];
      s.mean[f] = n != 0.0 ? s.s1[f] / n : 0.0;
      s.m2[f] = s.s2[f] - s.s1[f] * s.mean[f];
      const bool far = n != 0.0 && s.mean[f] * s.mean[f] * n > kRedoRatio * s.m2[f];
      s.redo[f] = far ? 1.0 : 0.0;
      again = again || far;
    }
    return again;
  };

  for (int64_t first = 0; first < r.rows; first += block_rows) {
    const int64_t numel = std::min(block_rows, r.rows - first) * features;
    const Block<S> block{data + first * features,
                         kWeighted ? r.weights + first : nullptr,
                         period,
                         tile_rows,
                         s.lane_row.data(),
                         s.lane_shift};
    if (measure(block, numel)) {
      for (int64_t f = 0; f < features; ++f) {
        if (s.redo[f] != 0.0) s.block_shift[f] += s.mean[f];
      }
      measure(block, numel);
    }
    for (int64_t f = 0; f < features; ++f) {
      out[f].min = min_of(out[f].min, s.low[f]);
      out[f].max = max_of(out[f].max, s.high[f]);
    }
    if (!kMoments) {
      for (int64_t f = 0; f < features; ++f) s.chunk_weight[f] += s.weight[f];
      continue;
    }
#pragma omp simd
    for (int64_t f = 0; f < features; ++f) {
      // The block's mean in the call's coordinates (see [note: shifted coordinates]).
      const double mean = (s.block_shift[f] - r.shift[f]) + s.mean[f];
      const Moments merged = ops::merge_moments({s.chunk_weight[f], s.chunk_mean[f], s.chunk_m2[f]},
                                                {s.weight[f], mean, s.m2[f]});
      s.chunk_weight[f] = merged.weight;
      s.chunk_mean[f] = merged.mean;
      s.chunk_m2[f] = merged.m2;
    }
    for (int64_t f = 0; f < features; ++f) {
      if (s.chunk_weight[f] != 0.0) s.block_shift[f] = r.shift[f] + s.chunk_mean[f];
    }
  }
  for (int64_t f = 0; f < features; ++f) {
    out[f].moments =
        ops::merge_moments(out[f].moments, {s.chunk_weight[f], s.chunk_mean[f], s.chunk_m2[f]});
  }
}

template <typename S>
void fit_rows_of(const FitRows& r, FeatureStats* out) {
  const bool weighted = r.weights != nullptr;
  if (r.moments) {
    return weighted ? fit_rows_typed<S, true, true>(r, out)
                    : fit_rows_typed<S, false, true>(r, out);
  }
  return weighted ? fit_rows_typed<S, true, false>(r, out)
                  : fit_rows_typed<S, false, false>(r, out);
}

void fit_rows(const FitRows& r, FeatureStats* out) {
  return r.dtype == DType::kFloat32 ? fit_rows_of<float>(r, out) : fit_rows_of<double>(r, out);
}

// Calls tile(offset, n) for each tile of a span of numel elements, the last
// one possibly partial.
template <typename Tile>
void for_each_tile(int64_t numel, int64_t period, const Tile& tile) {
  int64_t offset = 0;
  for (; offset + period <= numel; offset += period) tile(offset, period);
  if (offset < numel) tile(offset, numel - offset);
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
