// Storage types and their conversion to the math type.
//
// [note: half conversions] fp16 and bf16 are stored as raw 16-bit patterns and
// converted with branch-free integer code: it is bit-exact with torch for
// every value but NaN (round-to-nearest-even; a NaN stays a NaN, quieted, with
// its sign and top payload bits, where torch writes one fixed pattern), needs
// no F16C/AVX512-BF16 instructions, vectorizes on every ISA and compiles
// unchanged for CUDA.
#pragma once

#include <cstdint>
#include <cstring>

#include "ops/common.h"

namespace fusedoptim::ops {

// Codes shared with python/fusedoptim/_backend.py (_DTYPE_CODES).
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// How an updated bf16 param is stored: to nearest (even), or stochastically
// with the counter-based bits of ops/random.h (bf16_stochastic_round=True).
struct StoreRounding {
  bool stochastic = false;
  uint32_t key = 0;         // the tensor's key at this step (ops::stream_key)
  int64_t first_index = 0;  // the element index, within the tensor, of element 0
};

FUSEDOPTIM_HOST_DEVICE int element_size(DType dtype) {
  return dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2;
}

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

FUSEDOPTIM_HOST_DEVICE float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}
FUSEDOPTIM_HOST_DEVICE uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

FUSEDOPTIM_HOST_DEVICE float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

// float -> bf16 (round to nearest even, NaN kept as a quiet NaN) in the high
// 16 bits of the result; the low 16 bits are left uncleared. The bf16 pair
// loops (cpu/half_pairs.h) join two of these with one bitwise select.
FUSEDOPTIM_HOST_DEVICE uint32_t float_to_bf16_high_half(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);
  const uint32_t quiet_nan = u | 0x400000u;
  return f != f ? quiet_nan : rounded;
}

// float -> bf16 rounded stochastically (high 16 bits, as above): the 16 bits
// that bf16 drops are added to uniform random bits, so the magnitude rounds up
// with probability equal to the dropped fraction of an ulp and the rounding is
// unbiased. Only the low 16 bits of `random` are used. NaN as above; a value
// within an ulp of the largest bf16 may round up to inf, as it would with
// more precision.
FUSEDOPTIM_HOST_DEVICE uint32_t float_to_bf16_stochastic_high_half(float f, uint32_t random) {
  const uint32_t u = float_to_bits(f);
  const uint32_t rounded = u + (random & 0xFFFFu);
  const uint32_t quiet_nan = u | 0x400000u;
  return f != f ? quiet_nan : rounded;
}

FUSEDOPTIM_HOST_DEVICE uint16_t float_to_bf16(float f) {
  return uint16_t(float_to_bf16_high_half(f) >> 16);
}

FUSEDOPTIM_HOST_DEVICE float fp16_to_float(uint16_t h) {
  const uint32_t shifted_exp = 0x7C00u << 13;
  const uint32_t magnitude = (uint32_t(h) & 0x7FFFu) << 13;
  const uint32_t exp = magnitude & shifted_exp;
  const uint32_t rebased = magnitude + ((127u - 15u) << 23);
  // inf/NaN: push the exponent to 255. zero/subnormal: renormalize in float
  // arithmetic (exact: the subnormal significand has at most 10 bits).
  const uint32_t inf_nan = rebased + ((128u - 16u) << 23);
  const float subnormal = bits_to_float(rebased + (1u << 23)) - bits_to_float(113u << 23);
  uint32_t out = exp == shifted_exp ? inf_nan : (exp == 0 ? float_to_bits(subnormal) : rebased);
  return bits_to_float(out | ((uint32_t(h) & 0x8000u) << 16));
}

FUSEDOPTIM_HOST_DEVICE uint16_t float_to_fp16(float value) {
  const uint32_t f32_inf = 255u << 23;
  const uint32_t f16_overflow = (127u + 16u) << 23;
  const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  const uint32_t bits = float_to_bits(value);
  const uint32_t sign = bits & 0x80000000u;
  const uint32_t mag = bits ^ sign;
  // Subnormal results: adding the magic constant lets the FPU do the rounding.
  const uint32_t subnormal =
      float_to_bits(bits_to_float(mag) + bits_to_float(denorm_magic)) - denorm_magic;
  const uint32_t mant_odd = (mag >> 13) & 1u;
  const uint32_t normal = (mag + (uint32_t(15 - 127) << 23) + 0xFFFu + mant_odd) >> 13;
  const uint32_t overflow = mag > f32_inf ? 0x7E00u : 0x7C00u;
  const uint32_t out = mag >= f16_overflow ? overflow : (mag < (113u << 23) ? subnormal : normal);
  return uint16_t(out | (sign >> 16));
}

// MathType<S>: the type the update is computed in. Half types compute in float
// (as torch's fused kernels do), fp64 in double.
template <typename S>
struct MathTypeOf {
  using type = S;
};
template <>
struct MathTypeOf<Half> {
  using type = float;
};
template <>
struct MathTypeOf<BFloat16> {
  using type = float;
};
template <typename S>
using MathType = typename MathTypeOf<S>::type;

FUSEDOPTIM_HOST_DEVICE float load(const float* p) { return *p; }
FUSEDOPTIM_HOST_DEVICE double load(const double* p) { return *p; }
FUSEDOPTIM_HOST_DEVICE float load(const Half* p) { return fp16_to_float(p->bits); }
FUSEDOPTIM_HOST_DEVICE float load(const BFloat16* p) { return bf16_to_float(p->bits); }

FUSEDOPTIM_HOST_DEVICE void store(float* p, float v) { *p = v; }
FUSEDOPTIM_HOST_DEVICE void store(double* p, double v) { *p = v; }
FUSEDOPTIM_HOST_DEVICE void store(Half* p, float v) { p->bits = float_to_fp16(v); }
FUSEDOPTIM_HOST_DEVICE void store(BFloat16* p, float v) { p->bits = float_to_bf16(v); }

}  // namespace fusedoptim::ops
