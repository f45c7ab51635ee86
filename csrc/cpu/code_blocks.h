// 8-bit state codes decoded into float scratch and encoded back, a block at a
// time, for each ISA build (see [note: 8-bit state] in ops/quant8.h).
//
// [note: code blocks] A code turns into a float through its fp16 pattern, so
// both directions are a few 16-bit lane operations (the ops/quant8.h
// functions, run on GCC vector types) around one F16C conversion. Written as
// separate auto-vectorized loops (codes -> fp16 scratch -> floats, and back)
// the conversions cost more than the Adam update itself: every element took
// three extra stores and loads and every loop its own prologue. Here each
// vector of codes goes from memory to floats in registers. Without F16C (the
// baseline x86 build, other CPUs) the loops run element by element through
// the same functions and ops/storage.h's bit-exact fp16 conversions, so every
// build writes the same codes.
#pragma once

#include <cstdint>

#include "cpu/float_lanes.h"
#include "cpu/isa_build.h"
#include "ops/quant8.h"

namespace fusedoptim::cpu {
// See [note: one definition per ISA] in isa_build.h.
inline namespace FUSEDOPTIM_ISA_NAMESPACE {

// A vector step handles two float vectors' worth of codes, in 16-bit lanes.
#if FUSEDOPTIM_VECTOR_LANES == 512
constexpr int64_t kCodeLanes = 32;
typedef uint16_t CodeLanes __attribute__((vector_size(64)));

inline CodeLanes load_codes(const uint8_t* codes) {
  return CodeLanes(
      _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes))));
}
inline void store_codes(CodeLanes codes, uint8_t* out) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi16_epi8(__m512i(codes)));
}
inline void halves_to_floats(CodeLanes half, FloatLanes* low, FloatLanes* high) {
  const __m512i h = __m512i(half);
  *low = FloatLanes(_mm512_cvtph_ps(_mm512_castsi512_si256(h)));
  *high = FloatLanes(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
}
inline CodeLanes floats_to_halves(FloatLanes low, FloatLanes high) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m256i a = _mm512_cvtps_ph(__m512(low), kRound);
  const __m256i b = _mm512_cvtps_ph(__m512(high), kRound);
  return CodeLanes(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
}
#elif FUSEDOPTIM_VECTOR_LANES == 256
constexpr int64_t kCodeLanes = 16;
typedef uint16_t CodeLanes __attribute__((vector_size(32)));

inline CodeLanes load_codes(const uint8_t* codes) {
  return CodeLanes(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes))));
}
inline void store_codes(CodeLanes codes, uint8_t* out) {
  // Every lane holds a byte: packing with unsigned saturation keeps it.
  const __m256i c = __m256i(codes);
  const __m128i packed =
      _mm_packus_epi16(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), packed);
}
inline void halves_to_floats(CodeLanes half, FloatLanes* low, FloatLanes* high) {
  const __m256i h = __m256i(half);
  *low = FloatLanes(_mm256_cvtph_ps(_mm256_castsi256_si128(h)));
  *high = FloatLanes(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
}
inline CodeLanes floats_to_halves(FloatLanes low, FloatLanes high) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m128i a = _mm256_cvtps_ph(__m256(low), kRound);
  const __m128i b = _mm256_cvtps_ph(__m256(high), kRound);
  return CodeLanes(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1));
}
#else
constexpr int64_t kCodeLanes = 0;  // element by element
#endif
static_assert(kCodeLanes == 2 * kFloatLanes, "a step is two float vectors");

}  // namespace FUSEDOPTIM_ISA_NAMESPACE
}  // namespace fusedoptim::cpu

#if FUSEDOPTIM_VECTOR_LANES
namespace fusedoptim::ops {
template <>
struct VectorMath<cpu::CodeLanes> {
  using U = cpu::CodeLanes;
#if FUSEDOPTIM_VECTOR_LANES == 512
  static U min(U a, U b) { return U(_mm512_min_epu16(__m512i(a), __m512i(b))); }
#else
  static U min(U a, U b) { return U(_mm256_min_epu16(__m256i(a), __m256i(b))); }
#endif
};
}  // namespace fusedoptim::ops
#endif

namespace fusedoptim::cpu {
inline namespace FUSEDOPTIM_ISA_NAMESPACE {

#if FUSEDOPTIM_VECTOR_LANES
// The values of kCodeLanes codes times `scale`, in two float vectors.
template <typename Code>
inline void decode_lanes(const uint8_t* codes, float scale, FloatLanes* low, FloatLanes* high) {
  halves_to_floats(Code::half_bits(load_codes(codes)), low, high);
  *low *= scale;
  *high *= scale;
}
#endif

// values[i] = the value of codes[i] times `scale` (the block's decode scale).
template <typename Code>
void decode_codes(const uint8_t* __restrict codes, float scale, float* __restrict values,
                  int64_t n) {
  int64_t i = 0;
#if FUSEDOPTIM_VECTOR_LANES
  for (; i + kCodeLanes <= n; i += kCodeLanes) {
    FloatLanes low, high;
    decode_lanes<Code>(codes + i, scale, &low, &high);
    store_floats(values + i, low);
    store_floats(values + i + kFloatLanes, high);
  }
#endif
  for (; i < n; ++i) values[i] = Code::decode(codes[i]) * scale;
}

// codes[i] = the code of values[i] times `scale` (the block's encode scale).
template <typename Code>
void encode_codes(const float* __restrict values, float scale, uint8_t* __restrict codes,
                  int64_t n) {
  int64_t i = 0;
#if FUSEDOPTIM_VECTOR_LANES
  for (; i + kCodeLanes <= n; i += kCodeLanes) {
    const FloatLanes low = load_floats(values + i), high = load_floats(values + i + kFloatLanes);
    const CodeLanes half =
        floats_to_halves(Code::normalized(low, scale), Code::normalized(high, scale));
    store_codes(Code::from_half_bits(half), codes + i);
  }
#endif
  for (; i < n; ++i) codes[i] = Code::encode(values[i], scale);
}

}  // namespace FUSEDOPTIM_ISA_NAMESPACE
}  // namespace fusedoptim::cpu
