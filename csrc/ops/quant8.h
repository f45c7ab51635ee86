// Block-wise 8-bit codes for optimizer state: the single definition used by
// the CPU loops (cpu/quant_kernels.cpp), the CUDA kernels (cuda/) and the
// conversions between state precisions (bindings/bind_quant.cpp).
//
// [note: 8-bit state] Each run of `block_size` elements (in the param's memory
// order) keeps one fp32 absmax, the largest |value| of the block, and one
// byte per element: the value times kMaxValue / absmax, rounded to a small
// floating-point format. A float format keeps the same relative precision over
// its whole range, which is what Adam's moments need: the second moment of
// one block spans many orders of magnitude, and a linear code sends its
// small values to 0, so m / (sqrt(v) + eps) explodes.
//
// Both formats are fp16 with fewer bits: the exponents 2^-14 .. 2^0 of fp16
// (its exponent field's top bit always 0, subnormals included) and a shorter
// mantissa. A code is the fp16 bit pattern shifted right, so decoding is a
// shift into an fp16 pattern and the fp16 -> float conversion, and encoding
// rounds to fp16 (nearest even) and then drops the extra mantissa bits
// (nearest even): on x86 the two conversions are F16C instructions over a
// whole block (cpu/fp16_blocks.h), elsewhere the bit-exact integer code of
// ops/storage.h, so every ISA and CUDA produce the same codes. (Rounding
// twice differs from rounding float -> code at once only where the first
// rounding lands exactly on a midpoint; the codes are defined this way.)
//
// - The first moment (and SGD's momentum buffer): signed, 3 mantissa bits,
//   the largest magnitude 1.875, the smallest nonzero 2^-17 (4e-6 of the
//   block's absmax, which is on the largest code).
// - The second moment, as its square root: unsigned, 4 mantissa bits, the
//   largest 1.9375, the smallest nonzero 2^-18 (4e-12 of the block's largest
//   second moment). A nonzero root never rounds to 0: it takes the smallest
//   code instead, so the denominator of an update stays nonzero whenever the
//   second moment is, whatever else its block holds.
#pragma once

#include <cstdint>

#include "ops/common.h"
#include "ops/storage.h"

namespace fusedoptim::ops {

// The codec functions are templates over their value types so that one
// definition serves scalars (uint16_t and float: the CUDA kernels, the CPU
// tails) and the CPU's vector types (GCC vector extensions, cpu/code_blocks.h):
// they use only operators both kinds of type have.
template <int kManBits, bool kSigned, bool kKeepNonzero>
struct HalfCode {
  static constexpr int kShift = 10 - kManBits;  // fp16 mantissa bits dropped
  // 4 exponent bits + the mantissa: the magnitude is the code's low bits.
  static constexpr uint16_t kMaxMagnitude = (1u << (4 + kManBits)) - 1;
  static_assert(kMaxMagnitude == (kSigned ? 127 : 255), "one byte per code");
  static constexpr float kMaxValue = 2.0f - 1.0f / float(1 << kManBits);
  static constexpr float kMinValue = 1.0f / float(1u << (14 + kManBits));  // smallest nonzero

  // The fp16 bit pattern of a code (U: 16-bit lanes holding a code each).
  template <typename U>
  FUSEDOPTIM_HOST_DEVICE static U half_bits(U code) {
    if (!kSigned) return code << kShift;
    // The sign bit moves one place further than the magnitude: adding it to
    // itself first (bit 7 -> bit 8) lets one shift place both.
    return (code + (code & 0x80u)) << kShift;
  }

  // A value times its block's encode scale, ready for its rounding to fp16:
  // the second moment's nonzero roots are raised to the smallest code, which
  // fp16 would otherwise round to 0 below 2^-25.
  template <typename F>
  FUSEDOPTIM_HOST_DEVICE static F normalized(F value, float encode_scale) {
    const F y = value * encode_scale;
    if (!kKeepNonzero) return y;
    return (y > 0.0f) & (y < kMinValue) ? kMinValue : y;
  }

  // The code of a normalized value's fp16 bit pattern: its mantissa rounded
  // to kManBits (nearest even; a carry moves into the exponent), at most the
  // largest code.
  template <typename U>
  FUSEDOPTIM_HOST_DEVICE static U from_half_bits(U h) {
    const U magnitude = h & 0x7FFFu;
    const U round = ((magnitude >> kShift) & 1u) + ((1u << (kShift - 1)) - 1);
    U code = math_min((magnitude + round) >> kShift, U{} + kMaxMagnitude);
    if (kKeepNonzero) code = (code == 0) & (magnitude != 0) ? 1 : code;
    if (!kSigned) return code;
    return code | ((h >> 8) & 0x80u);
  }

  // One element at a time (the CUDA kernels, the CPU tails): the same values
  // as the vector loops, through the bit-exact fp16 conversions of storage.h.
  FUSEDOPTIM_HOST_DEVICE static float decode(uint8_t code) {
    return fp16_to_float(uint16_t(half_bits<uint32_t>(code)));
  }
  FUSEDOPTIM_HOST_DEVICE static uint8_t encode(float value, float encode_scale) {
    return uint8_t(from_half_bits<uint32_t>(float_to_fp16(normalized(value, encode_scale))));
  }
};

// Which 8-bit form a moment takes: the first moment and SGD's momentum buffer
// are signed codes of the values; the second moment, codes of its square root.
// Codes shared with python/fusedoptim/_backend.py (SIGNED_MOMENT, SECOND_MOMENT).
enum class MomentKind : int { kSigned = 0, kSecondMoment = 1 };

// The first moment and SGD's momentum buffer.
using SignedCode = HalfCode<3, true, false>;
// The square root of the second moment: nonzero stays nonzero.
using RootCode = HalfCode<4, false, true>;

// A block's absmax from the bit patterns of its values' magnitudes: integer
// max is exact and order-free (any thread count, any vector width) and ranks
// NaN above inf above every finite value, so one non-finite value marks its
// block (see BlockScale).
FUSEDOPTIM_HOST_DEVICE uint32_t magnitude_bits(float x) { return float_to_bits(x) & 0x7FFFFFFFu; }

// What one block's decoded codes are multiplied by, and its values by before
// encoding, from its absmax. A zero block encodes as zeros. A non-finite
// absmax (a NaN or inf among the block's values, which torch.optim would
// spread too) decodes every element of the block as NaN.
template <typename Code>
struct BlockScale {
  float decode;  // absmax / kMaxValue
  float encode;  // kMaxValue / absmax, or 0 for a zero or non-finite block

  FUSEDOPTIM_HOST_DEVICE static BlockScale from_absmax(float absmax) {
    BlockScale s;
    const bool finite = absmax <= 3.402823466e38f;  // false for inf and NaN
    s.decode = finite ? absmax / Code::kMaxValue : bits_to_float(0x7FC00000u);
    s.encode = finite && absmax > 0.0f ? Code::kMaxValue / absmax : 0.0f;
    return s;
  }
};

}  // namespace fusedoptim::ops
