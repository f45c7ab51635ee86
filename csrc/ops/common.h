// Shared by the CPU and CUDA builds: everything in csrc/ops/ compiles as
// plain C++ and as CUDA device code, so each formula exists exactly once.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FUSEDOPTIM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FUSEDOPTIM_HOST_DEVICE inline __attribute__((always_inline))
#endif

namespace fusedoptim::ops {

// [note: vector math types] The update functions of ops/ are templates over
// their math type M: float or double for the CUDA kernels and the CPU's
// auto-vectorized loops, or a CPU vector type (GCC vector extensions, see
// cpu/float_lanes.h) where a loop is written with explicit vectors. They use
// only the operators such types share, and these math_* functions: overloads
// for float and double, and for any other M the static members of
// VectorMath<M>, which the CPU code specializes.
template <typename M>
struct VectorMath;

// Overloads rather than std:: calls: device code has no std::sqrt(float), and
// the float overload must never silently promote to double.
FUSEDOPTIM_HOST_DEVICE float math_sqrt(float x) { return sqrtf(x); }
FUSEDOPTIM_HOST_DEVICE double math_sqrt(double x) { return sqrt(x); }
FUSEDOPTIM_HOST_DEVICE float math_abs(float x) { return fabsf(x); }
FUSEDOPTIM_HOST_DEVICE double math_abs(double x) { return fabs(x); }
FUSEDOPTIM_HOST_DEVICE float math_copysign(float x, float s) { return copysignf(x, s); }
FUSEDOPTIM_HOST_DEVICE double math_copysign(double x, double s) { return copysign(x, s); }

// a * b + c as torch's kernels compute add(alpha), lerp and addcmul:
// Vectorized::fmadd, one rounding wherever the CPU has the instruction (every
// x86 CPU with AVX2, every arm64 CPU) and in its CUDA kernels. Where torch
// fuses, the updates here must fuse too, or a grad plus its weight decay that
// nearly cancel differ in their leading digits. The build never fuses on its
// own (-ffp-contract=off, --fmad=false): only these calls do.
//
// [note: baseline x86 rounds twice] On an x86 CPU without FMA, torch's
// default kernels compute fmadd as a multiply and an add, two roundings, and
// so does the baseline build here: it follows torch on the CPUs that run it,
// at full speed (libm's exact fmaf is a call per element, 4-7x slower, and an
// exact SSE2 emulation measured slower still). So the baseline build agrees
// with the AVX2 and AVX-512 builds to a few ulp, not bit for bit; those two
// agree bit for bit (tests/test_optim_parity.py).
#if defined(__CUDACC__) || defined(__FMA__) || defined(__aarch64__)
FUSEDOPTIM_HOST_DEVICE float math_fma(float a, float b, float c) { return fmaf(a, b, c); }
FUSEDOPTIM_HOST_DEVICE double math_fma(double a, double b, double c) { return fma(a, b, c); }
#else
FUSEDOPTIM_HOST_DEVICE float math_fma(float a, float b, float c) { return a * b + c; }
FUSEDOPTIM_HOST_DEVICE double math_fma(double a, double b, double c) { return a * b + c; }
#endif

template <typename M>
FUSEDOPTIM_HOST_DEVICE M math_sqrt(M x) {
  return VectorMath<M>::sqrt(x);
}
template <typename M>
FUSEDOPTIM_HOST_DEVICE M math_abs(M x) {
  return VectorMath<M>::abs(x);
}
template <typename M>
FUSEDOPTIM_HOST_DEVICE M math_copysign(M x, M s) {
  return VectorMath<M>::copysign(x, s);
}
template <typename M>
FUSEDOPTIM_HOST_DEVICE M math_fma(M a, M b, M c) {
  return VectorMath<M>::fma(a, b, c);
}

// The smaller of two unsigned integers (lanes): one instruction on vectors,
// where a compare and a select would be two.
FUSEDOPTIM_HOST_DEVICE uint32_t math_min(uint32_t a, uint32_t b) { return a < b ? a : b; }
template <typename U>
FUSEDOPTIM_HOST_DEVICE U math_min(U a, U b) {
  return VectorMath<U>::min(a, b);
}

// torch.maximum semantics: NaN wins, so a NaN in exp_avg_sq reaches
// max_exp_avg_sq exactly as it does in torch.optim.Adam(amsgrad=True).
template <typename M>
FUSEDOPTIM_HOST_DEVICE M nan_propagating_max(M a, M b) {
  const M larger = a > b ? a : b;
  return a != a ? a : larger;
}

}  // namespace fusedoptim::ops
