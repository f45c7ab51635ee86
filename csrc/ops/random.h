// Random bits for stochastic rounding: a counter-based generator, the single
// definition used by the CPU loops and the CUDA kernels.
//
// [note: counter-based random bits] An element's bits are a hash of its
// index within its tensor and of a 32-bit key, and the key a hash of the
// optimizer's seed, the param's position in the optimizer (its state_dict
// index) and the step count. Nothing is drawn from a stream, so the bits do
// not depend on the thread count, the chunking, the ISA build or the device,
// and a run resumed from a state dict (the seed is a param group option, the
// step is in the state) draws exactly what the uninterrupted run would have.
// The hash is lowbias32 (Chris Wellons' search for 32-bit integer hashes):
// two multiplies and three xor-shifts, a bijection whose every output bit
// depends on every input bit; stochastic rounding uses 16 bits per element.
#pragma once

#include <cstdint>

#include "ops/common.h"

namespace fusedoptim::ops {

template <typename U>
FUSEDOPTIM_HOST_DEVICE U mix32(U x) {
  x = x ^ (x >> 16);
  x = x * 0x7FEB352Du;
  x = x ^ (x >> 15);
  x = x * 0x846CA68Bu;
  return x ^ (x >> 16);
}

// 32 random bits for counter `counter` (U: 32-bit lanes) of the stream `key`.
template <typename U>
FUSEDOPTIM_HOST_DEVICE U random_bits(U counter, uint32_t key) {
  return mix32(counter ^ key);
}

// The key of one tensor at one step (host side, once per tensor and step):
// splitmix64's finalizer over the three inputs, folded to 32 bits.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
inline uint32_t stream_key(uint64_t seed, uint64_t stream, uint64_t step) {
  const uint64_t h = mix64(mix64(mix64(seed) ^ stream) ^ step);
  return uint32_t(h ^ (h >> 32));
}

// Counters are 32-bit: bf16 elements come in pairs (one hash, 16 bits each),
// so a counter names a pair; past 2^32 pairs of one tensor the key changes
// instead (chunks never straddle that boundary: they are 2^15 elements).
FUSEDOPTIM_HOST_DEVICE uint32_t chunk_key(uint32_t key, int64_t first_pair) {
  const uint32_t high = uint32_t(uint64_t(first_pair) >> 32);
  return high == 0 ? key : mix32(key ^ high);
}

}  // namespace fusedoptim::ops
