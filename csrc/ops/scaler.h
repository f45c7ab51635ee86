// Per-element math of the streaming scalers (fusedoptim.preprocessing): the
// transform of one value and the merge of two sets of per-feature moments.
// The single definition used by the CPU kernels (cpu/scaler_kernels.cpp), the
// CPU driver (cpu/scaler_cpu.cpp) and the merges the bindings expose.
#pragma once

#include "ops/common.h"

namespace fusedoptim::ops {

// Codes shared with python/fusedoptim/_backend.py (SCALER_*).
enum class ScalerOp : int {
  kSubtractDivide = 0,  // y = (x - a) / b: StandardScaler.transform, MinMaxScaler.inverse_transform
  kMultiplyAdd = 1,     // y = x * a + b: StandardScaler.inverse_transform, MinMaxScaler.transform
};

// [note: scikit-learn's roundings] scikit-learn transforms in place with two
// numpy operations (`X -= mean_; X /= scale_`, or `X *= scale_; X += min_`),
// each rounded to X's dtype. StandardScaler first casts its float64 mean_ and
// scale_ to X's dtype, so a float32 X is computed in float (M = S = float);
// MinMaxScaler does not cast, so a float32 X with float64 statistics is
// computed in double and rounded to float after each operation (M = double).
// Rounding the intermediate to S here reproduces both, bit for bit. The
// identities of the skipped steps are exact: x - (+0) = x and x / 1 = x for
// every x, and x + (-0) = x (with_mean=False passes b = -0 to kMultiplyAdd, so
// that a -0 product stays -0 as it does when numpy skips the add).
template <ScalerOp kOp, typename S, typename M>
FUSEDOPTIM_HOST_DEVICE S scaler_apply(S x, M a, M b) {
  if (kOp == ScalerOp::kSubtractDivide) {
    const S shifted = static_cast<S>(static_cast<M>(x) - a);
    return static_cast<S>(static_cast<M>(shifted) / b);
  }
  const S scaled = static_cast<S>(static_cast<M>(x) * a);
  return static_cast<S>(static_cast<M>(scaled) + b);
}

// numpy.clip(y, low, high): NaN stays NaN (both comparisons are false).
template <typename S>
FUSEDOPTIM_HOST_DEVICE S scaler_clip(S y, S low, S high) {
  return y < low ? low : (y > high ? high : y);
}

// The moments of one feature over a set of samples: total weight (the count
// of non-NaN values when unweighted), weighted mean, and the weighted sum of
// squared deviations from it (the variance times the weight).
struct Moments {
  double weight;
  double mean;
  double m2;
};

// [note: Chan's merge] Two sets of moments combine exactly (Chan, Golub and
// LeVeque 1983, eq. 2.1): with delta = mean_b - mean_a and n = n_a + n_b,
//   mean = mean_a + delta * n_b / n,   m2 = m2_a + m2_b + delta^2 * n_a * n_b / n.
// Merging means rather than sums keeps the accuracy of data far from zero:
// for values around 1e8 with unit variance, delta is of order one and no
// term holds 1e8-sized sums whose difference matters (scikit-learn's
// partial_fit merges sums, and loses about eps * n * 1e8 there). A side
// with no weight leaves the other unchanged, so empty batches and all-NaN
// features merge as no-ops.
//
// Written without branches (both sides' selects at the end), so loops of
// merges vectorize; the quotient computed for an empty side is discarded.
FUSEDOPTIM_HOST_DEVICE Moments merge_moments(Moments a, Moments b) {
  const double n = a.weight + b.weight;
  const double delta = b.mean - a.mean;
  const double share_b = b.weight / n;
  const Moments merged{n, a.mean + delta * share_b,
                       a.m2 + b.m2 + delta * delta * a.weight * share_b};
  return b.weight == 0.0 ? a : (a.weight == 0.0 ? b : merged);
}

}  // namespace fusedoptim::ops
