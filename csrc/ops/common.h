// Shared by the CPU and CUDA builds: everything in csrc/ops/ compiles as
// plain C++ and as CUDA device code, so each formula exists exactly once.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define FUSEDOPTIM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FUSEDOPTIM_HOST_DEVICE inline __attribute__((always_inline))
#endif

namespace fusedoptim::ops {

// Overloads rather than std:: calls: device code has no std::sqrt(float), and
// the float overload must never silently promote to double.
FUSEDOPTIM_HOST_DEVICE float math_sqrt(float x) { return sqrtf(x); }
FUSEDOPTIM_HOST_DEVICE double math_sqrt(double x) { return sqrt(x); }
FUSEDOPTIM_HOST_DEVICE float math_abs(float x) { return fabsf(x); }
FUSEDOPTIM_HOST_DEVICE double math_abs(double x) { return fabs(x); }
FUSEDOPTIM_HOST_DEVICE float math_copysign(float x, float s) { return copysignf(x, s); }
FUSEDOPTIM_HOST_DEVICE double math_copysign(double x, double s) { return copysign(x, s); }

// torch.maximum semantics: NaN wins, so a NaN in exp_avg_sq reaches
// max_exp_avg_sq exactly as it does in torch.optim.Adam(amsgrad=True).
template <typename M>
FUSEDOPTIM_HOST_DEVICE M nan_propagating_max(M a, M b) {
  const M larger = a > b ? a : b;
  return a != a ? a : larger;
}

}  // namespace fusedoptim::ops
