// Any storage type to float scratch and back, a block at a time, for the
// update loops of mixed precision (see [note: staged blocks] in
// optim_kernels.cpp): grads of another dtype than their param, fp32 master
// weights with a half-precision copy, stochastically rounded bf16 params.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/fp16_blocks.h"
#include "cpu/half_pairs.h"
#include "cpu/isa_build.h"
#include "ops/random.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {
// See [note: one definition per ISA] in isa_build.h.
inline namespace FUSEDOPTIM_ISA_NAMESPACE {

// 512 elements: five float streams of 2 KiB (Adam with amsgrad) stay in L1.
constexpr int64_t kStagedBlock = 512;

inline const void* element_at(const void* base, int64_t index, ops::DType dtype) {
  return static_cast<const char*>(base) + index * ops::element_size(dtype);
}
inline void* element_at(void* base, int64_t index, ops::DType dtype) {
  return static_cast<char*>(base) + index * ops::element_size(dtype);
}

// n values of `dtype` at src as floats (fp32, fp16 or bf16).
inline void widen_to_floats(ops::DType dtype, const void* src, float* __restrict dst, int64_t n) {
  switch (dtype) {
    case ops::DType::kFloat16:
      return widen_block(static_cast<const ops::Half*>(src), dst, n);
    case ops::DType::kBFloat16: {
      const ops::BFloat16* __restrict in = static_cast<const ops::BFloat16*>(src);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dst[i] = ops::load(in + i);
      return;
    }
    default:
      memcpy(dst, src, size_t(n) * sizeof(float));
  }
}

// n floats stored as `dtype` at dst (fp32, fp16 or bf16), to nearest or, for
// bf16, stochastically (`rounding.first_index` is even: chunks and blocks
// start on even elements, so elements pair up as ops/random.h counts them).
inline void narrow_from_floats(const float* __restrict src, ops::DType dtype, void* dst, int64_t n,
                               const ops::StoreRounding& rounding) {
  switch (dtype) {
    case ops::DType::kFloat16:
      return narrow_block(src, static_cast<ops::Half*>(dst), n);
    case ops::DType::kBFloat16: {
      ops::BFloat16* out = static_cast<ops::BFloat16*>(dst);
      if (!rounding.stochastic) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) ops::store(out + i, src[i]);
        return;
      }
      const int64_t first_pair = rounding.first_index / 2;
      const uint32_t key = ops::chunk_key(rounding.key, first_pair);
      const uint32_t counter = uint32_t(first_pair);
      const int64_t pairs = n / 2;
#pragma omp simd
      for (int64_t j = 0; j < pairs; ++j) {
        store_pair_stochastic(out, j, src[2 * j], src[2 * j + 1],
                              ops::random_bits(counter + uint32_t(j), key));
      }
      if (n % 2) {
        const uint32_t random = ops::random_bits(counter + uint32_t(pairs), key);
        out[n - 1].bits =
            uint16_t(ops::float_to_bf16_stochastic_high_half(src[n - 1], random) >> 16);
      }
      return;
    }
    default:
      memcpy(dst, src, size_t(n) * sizeof(float));
  }
}

// Elements [at, at + n) of a tensor of `dtype` as floats: the tensor itself
// when it is float, else a copy in `scratch`.
inline float* floats_of(ops::DType dtype, void* base, int64_t at, float* scratch, int64_t n) {
  if (dtype == ops::DType::kFloat32) return static_cast<float*>(base) + at;
  widen_to_floats(dtype, element_at(base, at, dtype), scratch, n);
  return scratch;
}

// Stores what floats_of returned back into the tensor (a no-op for float).
inline void store_floats_as(const float* values, ops::DType dtype, void* base, int64_t at,
                            int64_t n, const ops::StoreRounding& rounding = {}) {
  if (dtype == ops::DType::kFloat32) return;  // updated in place
  ops::StoreRounding r = rounding;
  r.first_index += at;
  narrow_from_floats(values, dtype, element_at(base, at, dtype), n, r);
}

}  // namespace FUSEDOPTIM_ISA_NAMESPACE
}  // namespace fusedoptim::cpu
