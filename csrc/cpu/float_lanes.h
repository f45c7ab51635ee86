// The vector types of the CPU loops written with explicit vectors (the 8-bit
// state loops, cpu/quant_kernels.cpp), and the math of ops/ on them (see
// [note: vector math types] in ops/common.h). One vector of floats per ISA
// build: 16 lanes with AVX-512, 8 with AVX2; none in the baseline build,
// whose loops run element by element through the same ops/ functions.
#pragma once

#include <cstdint>
#include <cstring>

// The width of the explicit vector loops: AVX-512 (F and BW) or AVX2 with
// FMA and F16C, the instructions they use; 0 for element-by-element loops.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__FMA__) && defined(__F16C__)
#define FUSEDOPTIM_VECTOR_LANES 512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FUSEDOPTIM_VECTOR_LANES 256
#else
#define FUSEDOPTIM_VECTOR_LANES 0
#endif

#if FUSEDOPTIM_VECTOR_LANES
#include <immintrin.h>
#endif

#include "cpu/isa_build.h"
#include "ops/common.h"

namespace fusedoptim::cpu {
// See [note: one definition per ISA] in isa_build.h.
inline namespace FUSEDOPTIM_ISA_NAMESPACE {

#if FUSEDOPTIM_VECTOR_LANES == 512
constexpr int64_t kFloatLanes = 16;
typedef float FloatLanes __attribute__((vector_size(64)));
typedef uint32_t UintLanes __attribute__((vector_size(64)));
#elif FUSEDOPTIM_VECTOR_LANES == 256
constexpr int64_t kFloatLanes = 8;
typedef float FloatLanes __attribute__((vector_size(32)));
typedef uint32_t UintLanes __attribute__((vector_size(32)));
#else
constexpr int64_t kFloatLanes = 0;  // no vector loops in this build
#endif

#if FUSEDOPTIM_VECTOR_LANES
inline FloatLanes load_floats(const float* p) {
  FloatLanes v;
  memcpy(&v, p, sizeof(v));
  return v;
}
inline void store_floats(float* p, FloatLanes v) { memcpy(p, &v, sizeof(v)); }
inline FloatLanes splat(float x) { return FloatLanes{} + x; }
inline UintLanes bits_of(FloatLanes v) { return reinterpret_cast<UintLanes&>(v); }
inline FloatLanes floats_of(UintLanes v) { return reinterpret_cast<FloatLanes&>(v); }

// The largest lane of a vector of magnitude bits (see ops::magnitude_bits).
inline uint32_t max_lane(UintLanes v) {
  uint32_t out = 0;
  for (int64_t i = 0; i < kFloatLanes; ++i) out = v[i] > out ? v[i] : out;
  return out;
}
#endif

}  // namespace FUSEDOPTIM_ISA_NAMESPACE
}  // namespace fusedoptim::cpu

#if FUSEDOPTIM_VECTOR_LANES
namespace fusedoptim::ops {

// Each is the one IEEE operation the float overload of ops/common.h does, so
// a vector loop gives exactly the bits of the element loop.
template <>
struct VectorMath<cpu::FloatLanes> {
  using F = cpu::FloatLanes;
#if FUSEDOPTIM_VECTOR_LANES == 512
  static F sqrt(F x) { return F(_mm512_sqrt_ps(__m512(x))); }
  static F fma(F a, F b, F c) { return F(_mm512_fmadd_ps(__m512(a), __m512(b), __m512(c))); }
#else
  static F sqrt(F x) { return F(_mm256_sqrt_ps(__m256(x))); }
  static F fma(F a, F b, F c) { return F(_mm256_fmadd_ps(__m256(a), __m256(b), __m256(c))); }
#endif
  static F abs(F x) { return cpu::floats_of(cpu::bits_of(x) & 0x7FFFFFFFu); }
  static F copysign(F x, F s) {
    return cpu::floats_of((cpu::bits_of(x) & 0x7FFFFFFFu) | (cpu::bits_of(s) & 0x80000000u));
  }
};

template <>
struct VectorMath<cpu::UintLanes> {
  using U = cpu::UintLanes;
#if FUSEDOPTIM_VECTOR_LANES == 512
  static U max(U a, U b) { return U(_mm512_max_epu32(__m512i(a), __m512i(b))); }
#else
  static U max(U a, U b) { return U(_mm256_max_epu32(__m256i(a), __m256i(b))); }
#endif
};

}  // namespace fusedoptim::ops
#endif
