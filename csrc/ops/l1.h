// The decoupled L1 proximal step, applied after an optimizer update.
#pragma once

#include "ops/common.h"

namespace fusedoptim::ops {

// p <- sign(p) * max(|p| - threshold, 0), with threshold = lr * l1.
// Weights that cross zero land on an exact +0 (that is what makes L1 produce
// sparse models); NaN stays NaN rather than being shrunk to zero.
template <typename M>
FUSEDOPTIM_HOST_DEVICE M l1_proximal(M p, M threshold) {
  const M shrunk = math_abs(p) - threshold;
  return shrunk <= M(0) ? M(0) : math_copysign(shrunk, p);
}

}  // namespace fusedoptim::ops
