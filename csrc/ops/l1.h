// The decoupled L1 proximal step, applied after an optimizer update.
#pragma once

#include "ops/common.h"

namespace fusedoptim::ops {

// p <- sign(p) * max(|p| - threshold, 0), with threshold = lr * l1.
// Weights within the threshold land on an exact zero (that is what makes L1
// produce sparse models), signed like the weight as the formula says; NaN
// stays NaN rather than being shrunk to zero. With threshold 0 this is the
// identity, bit for bit (-0 and NaN included), so callers apply it
// unconditionally instead of branching on "l1 enabled" inside the loop.
template <typename M>
FUSEDOPTIM_HOST_DEVICE M l1_proximal(M p, M threshold) {
  const M shrunk = math_abs(p) - threshold;
  return math_copysign(shrunk < 0.0f ? M{} : shrunk, p);
}

}  // namespace fusedoptim::ops
