// fp16 storage widened to float scratch blocks and narrowed back with the
// F16C conversion instructions where the build has them (avx2, avx512).
//
// [note: fp16 blocks] The ops/storage.h fp16 conversions are integer code
// (about 15 vector operations per conversion), which made fp16 Adam 2x slower
// than bf16 and fp16 SGD 3x. vcvtph2ps/vcvtps2ph (rounding to nearest even)
// give the same bits for every number, subnormals and infinities included.
// NaNs differ: vcvtps2ph keeps payload bits where float_to_fp16 returns
// 0x7E00 with the sign, so narrow() rewrites NaN lanes to exactly that; and
// vcvtph2ps sets the quiet bit of a signaling NaN that fp16_to_float keeps
// clear, which changes no stored bit: every value is stored through narrow(),
// and it maps all NaNs of one sign to one pattern. So every ISA, the
// baseline's integer code included, produces identical bits.
#pragma once

#include <cstdint>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "cpu/isa_build.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {
// See [note: one definition per ISA] in isa_build.h.
inline namespace FUSEDOPTIM_ISA_NAMESPACE {

// Six float streams of 2 KiB (Adam with amsgrad, the gradient included) stay
// in L1 next to the fp16 data.
constexpr int64_t kFp16Block = 512;

inline void widen_block(const ops::Half* src, float* __restrict dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
  }
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) dst[i] = ops::load(src + i);
}

inline void narrow_block(const float* __restrict src, ops::Half* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const __m256i sign = _mm256_set1_epi16(int16_t(0x8000));
  const __m256i quiet_nan = _mm256_set1_epi16(0x7E00);
  for (; i + 16 <= n; i += 16) {
    const __m512 f = _mm512_loadu_ps(src + i);
    const __m256i h = _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
    const __m256i canonical = _mm256_or_si256(_mm256_and_si256(h, sign), quiet_nan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm256_mask_mov_epi16(h, nan, canonical));
  }
#elif defined(__F16C__)
  const __m128i sign = _mm_set1_epi16(int16_t(0x8000));
  const __m128i quiet_nan = _mm_set1_epi16(0x7E00);
  for (; i + 8 <= n; i += 8) {
    const __m256 f = _mm256_loadu_ps(src + i);
    const __m128i h = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i nan32 = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
    const __m128i nan =
        _mm_packs_epi32(_mm256_castsi256_si128(nan32), _mm256_extracti128_si256(nan32, 1));
    const __m128i canonical = _mm_or_si128(_mm_and_si128(h, sign), quiet_nan);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_blendv_epi8(h, canonical, nan));
  }
#endif
  for (; i < n; ++i) ops::store(dst + i, src[i]);
}

}  // namespace FUSEDOPTIM_ISA_NAMESPACE
}  // namespace fusedoptim::cpu
