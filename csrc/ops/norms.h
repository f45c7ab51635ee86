// Per-element math of the vector norms behind clip_grad_norm_, the optimizers'
// max_grad_norm and fusedoptim.penalties: the single definition used by the
// CPU loops (and, later, the CUDA kernels).
//
// A norm is a sum (or max) of per-element terms, reduced in double whatever
// the storage type, then finished by a root on the host.
//
// [note: double accumulation] torch's CPU norms accumulate fp32/fp16/bf16 in
// float in one long running sum, whose relative error grows with the element
// count (measured 1e-5 for a 1M-element fp32 L2 norm, 1e-4 for p=3.5).
// Summing in double makes our result the correctly rounded norm for any
// realistic size, and a fixed reduction order (see cpu/norm_kernels.cpp)
// makes it independent of the thread count and the ISA. No float accumulation
// order could reproduce torch's bits anyway: its order depends on its own
// vectorization and threading.
#pragma once

#include <cfloat>

#include "ops/common.h"

namespace fusedoptim::ops {

// Codes shared with python/fusedoptim/_backend.py (_NORM_MODES).
enum class NormMode : int {
  kL1 = 0,         // sum |x|
  kL2 = 1,         // sqrt(sum x^2)
  kL2Squared = 2,  // sum x^2
  kLp = 3,         // (sum |x|^p)^(1/p), p > 0 finite
  kInf = 4,        // max |x|, NaN wins
  kL1AndL2 = 5,    // (sum |x|, sqrt(sum x^2)) in one read
};

// A reduction's running value(s). `second` is used by kL1AndL2 only.
struct NormSums {
  double first;
  double second;
};

FUSEDOPTIM_HOST_DEVICE double math_pow(double x, double y) { return pow(x, y); }

// The terms one element adds to the first and second sums.
template <NormMode kMode>
FUSEDOPTIM_HOST_DEVICE double norm_term(double x, double p) {
  if (kMode == NormMode::kL2 || kMode == NormMode::kL2Squared) return x * x;
  if (kMode == NormMode::kLp) return math_pow(math_abs(x), p);
  return math_abs(x);
}
FUSEDOPTIM_HOST_DEVICE double norm_second_term(double x) { return x * x; }

// Folds a term (or a partial result) into a running value. Max propagates NaN
// as torch.linalg.vector_norm(ord=inf) does; sums propagate it by themselves.
FUSEDOPTIM_HOST_DEVICE bool norm_is_max(NormMode mode) { return mode == NormMode::kInf; }
FUSEDOPTIM_HOST_DEVICE double norm_fold(NormMode mode, double acc, double term) {
  return norm_is_max(mode) ? nan_propagating_max(acc, term) : acc + term;
}
template <NormMode kMode>
FUSEDOPTIM_HOST_DEVICE double norm_fold(double acc, double term) {
  return norm_fold(kMode, acc, term);
}

// [note: float range] torch sums the terms of an fp32/fp16/bf16 tensor in
// float, so a sum beyond float's range is inf there (an fp32 gradient with an
// L2 norm above ~1.8e19 has an infinite norm in torch.nn.utils.clip_grad_norm_).
// Applying the same limit to our double sums keeps "is the norm finite" — and
// with it error_if_nonfinite and the clip coefficient — identical to torch's.
FUSEDOPTIM_HOST_DEVICE double in_float_range(double sum) {
  return sum > double(FLT_MAX) ? double(INFINITY) : sum;
}

// Gradient clipping's multiply, g * coef in the storage type's math type:
// torch's mul_ with a 0-dim coefficient rounds the coefficient to float for
// fp32/fp16/bf16 tensors (double for fp64), multiplies, and rounds once.
template <typename M>
FUSEDOPTIM_HOST_DEVICE M scaled(M g, M coef) {
  return g * coef;
}

// The finished norm(s) from the reduced sums.
FUSEDOPTIM_HOST_DEVICE NormSums norm_finish(NormMode mode, NormSums sums, double p) {
  switch (mode) {
    case NormMode::kL2:
      return {math_sqrt(sums.first), 0.0};
    case NormMode::kLp:
      return {math_pow(sums.first, 1.0 / p), 0.0};
    case NormMode::kL1AndL2:
      return {sums.first, math_sqrt(sums.second)};
    default:
      return sums;
  }
}

}  // namespace fusedoptim::ops
