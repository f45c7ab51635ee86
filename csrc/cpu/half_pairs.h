// bf16 storage read and written two elements at a time.
//
// [note: bf16 pair layout] Two adjacent bf16 values read as one uint32 hold
// element 2j in the low half and 2j+1 in the high half, so widening them is
// `w << 16` and `w & 0xFFFF0000`, and narrowing joins two results rounded in
// place (ops::float_to_bf16_high_half) with one shift and one bitwise select.
// A loop over pairs that updates the even and the odd element as two
// independent values therefore vectorizes with 32-bit lane operations only.
// Converting one element per iteration instead made gcc emit
// zero-extensions, 256-bit extracts and cross-lane word permutes (vpermt2w)
// for every stream. The conversions are still the ops/storage.h functions, so
// the results are those of torch's casts (NaN aside, see [note: half
// conversions]) and identical on every ISA.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/isa_build.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {
// See [note: one definition per ISA] in isa_build.h.
inline namespace FUSEDOPTIM_ISA_NAMESPACE {

struct Bf16Pair {
  float even, odd;
};

// always_inline: gcc's inliner otherwise gives up on some of the larger loop
// instantiations (avx2 SGD), and a call inside the loop stops vectorization.
#define FUSEDOPTIM_PAIR_INLINE inline __attribute__((always_inline))

FUSEDOPTIM_PAIR_INLINE Bf16Pair load_pair(const ops::BFloat16* base, int64_t pair) {
  uint32_t bits;
  memcpy(&bits, base + 2 * pair, sizeof(bits));
  return {ops::bf16_to_float(uint16_t(bits)), ops::bf16_to_float(uint16_t(bits >> 16))};
}

FUSEDOPTIM_PAIR_INLINE void store_pair(ops::BFloat16* base, int64_t pair, float even, float odd) {
  const uint32_t bits = (ops::float_to_bf16_high_half(even) >> 16) |
                        (ops::float_to_bf16_high_half(odd) & 0xFFFF0000u);
  memcpy(base + 2 * pair, &bits, sizeof(bits));
}

// store_pair with stochastic rounding: the low 16 bits of `random` round the
// even element, the high 16 the odd one (ops/random.h gives 32 per pair).
FUSEDOPTIM_PAIR_INLINE void store_pair_stochastic(ops::BFloat16* base, int64_t pair, float even,
                                                  float odd, uint32_t random) {
  const uint32_t bits = (ops::float_to_bf16_stochastic_high_half(even, random) >> 16) |
                        (ops::float_to_bf16_stochastic_high_half(odd, random >> 16) & 0xFFFF0000u);
  memcpy(base + 2 * pair, &bits, sizeof(bits));
}

}  // namespace FUSEDOPTIM_ISA_NAMESPACE
}  // namespace fusedoptim::cpu
