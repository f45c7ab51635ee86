// Mixed precision on CUDA (the CPU's [note: staged blocks]): grads of another
// dtype than their param, fp32 master weights writing their half-precision
// param, bf16 params rounded stochastically. One kernel per op variant serves
// every combination: the storage types are kernel arguments, and the switch
// on them is the same for every thread of a launch, so it costs no
// divergence. Elements go one at a time (no 16-byte vectors): these paths are
// bound by memory like the plain ones, and they are the rarer ones.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/chunk_plan.h"
#include "cuda/launch_table.h"
#include "cuda/runtime.h"
#include "ops/random.h"
#include "ops/storage.h"
#include "optim_batch.h"

namespace fusedoptim::cuda {

#if CUDART_VERSION >= 12010
constexpr int kMixedParamBytes = kLargeParamBytes;
#else
constexpr int kMixedParamBytes = kSmallParamBytes;
#endif
constexpr int kMixedThreads = 512;

// The storage types of one mixed launch (float: fp32, as the param stream of
// master weights always is).
struct MixedTypes {
  ops::DType param;
  ops::DType grad;
  ops::DType state;
  ops::DType copy;
  bool has_copy;
  bool stochastic;
};

__device__ __forceinline__ float load_any(ops::DType dtype, const void* base, int64_t i) {
  switch (dtype) {
    case ops::DType::kFloat16:
      return ops::load(static_cast<const ops::Half*>(base) + i);
    case ops::DType::kBFloat16:
      return ops::load(static_cast<const ops::BFloat16*>(base) + i);
    default:
      return static_cast<const float*>(base)[i];
  }
}

__device__ __forceinline__ void store_any(ops::DType dtype, void* base, int64_t i, float value) {
  switch (dtype) {
    case ops::DType::kFloat16:
      return ops::store(static_cast<ops::Half*>(base) + i, value);
    case ops::DType::kBFloat16:
      return ops::store(static_cast<ops::BFloat16*>(base) + i, value);
    default:
      static_cast<float*>(base)[i] = value;
  }
}

// A bf16 param element rounded with the bits the CPU loops draw for it: the
// pair (element / 2) is the counter, the low 16 bits round the even element.
__device__ __forceinline__ void store_bf16_stochastic(void* base, int64_t i, float value,
                                                      uint32_t key, int64_t index) {
  const int64_t pair = index / 2;
  const uint32_t random = ops::random_bits(uint32_t(pair), ops::chunk_key(key, pair));
  const uint32_t bits = index % 2 ? random >> 16 : random;
  static_cast<ops::BFloat16*>(base)[i].bits =
      uint16_t(ops::float_to_bf16_stochastic_high_half(value, bits) >> 16);
}

// Streams: 0 the updated param (or fp32 master), 1 grad, 2.. the op's state
// streams, then kDepth: the param written from a master (with has_copy).
template <typename Op>
__global__ void __launch_bounds__(kMixedThreads)
    mixed_tensor_kernel(const LaunchTable<Op::kDepth + 1, kMixedParamBytes, true> table,
                        const Op op, const MixedTypes types) {
  constexpr int kDepth = Op::kDepth;
  const BlockExtent e = block_extent(table, int(blockIdx.x));
  void* ptr[kDepth + 1];
#pragma unroll
  for (int d = 0; d <= kDepth; ++d) {
    const ops::DType dtype = d == 0 ? types.param : d == 1 ? types.grad : types.state;
    void* base = table.addresses[d][e.slot];
    ptr[d] =
        base == nullptr
            ? nullptr
            : static_cast<char*>(base) +
                  e.begin * ops::element_size(d == kDepth && types.has_copy ? types.copy : dtype);
  }
  const uint32_t key = table.keys[e.slot];
  for (int i = int(threadIdx.x); i < e.count; i += kMixedThreads) {
    float x[kDepth];
    x[0] = load_any(types.param, ptr[0], i);
    x[1] = load_any(types.grad, ptr[1], i);
#pragma unroll
    for (int d = 2; d < kDepth; ++d) x[d] = Op::reads(d) ? load_any(types.state, ptr[d], i) : 0.0f;
    op(x);
    if (types.stochastic) {
      store_bf16_stochastic(ptr[0], i, x[0], key, e.begin + i);
    } else {
      store_any(types.param, ptr[0], i, x[0]);
    }
#pragma unroll
    for (int d = 2; d < kDepth; ++d) {
      if (Op::writes(d)) store_any(types.state, ptr[d], i, x[d]);
    }
    if (types.has_copy) store_any(types.copy, ptr[kDepth], i, x[0]);
  }
}

// Whether a batch's precision needs the mixed kernel.
inline bool is_mixed(ops::DType dtype, const Precision& precision) {
  return precision.grad_dtype != dtype || precision.state_dtype != dtype ||
         !precision.param_copies.empty() || precision.stochastic_round;
}

inline MixedTypes mixed_types(ops::DType dtype, const Precision& precision) {
  return {dtype,
          precision.grad_dtype,
          precision.state_dtype,
          precision.copy_dtype,
          !precision.param_copies.empty(),
          precision.stochastic_round};
}

// As multi_tensor_apply, for the mixed kernel: address_of(d, tensor) for the
// op's streams, the copies taken from `precision`.
template <typename Op, typename AddressOf, typename OpFor>
void mixed_tensor_apply(const std::vector<int64_t>& numels, const std::vector<int32_t>& variants,
                        const Precision& precision, const MixedTypes& types, AddressOf address_of,
                        OpFor op_for, cudaStream_t stream, const char* name) {
  constexpr int kDepth = Op::kDepth + 1;
  using Table = LaunchTable<kDepth, kMixedParamBytes, true>;
  auto with_copy = [&](int d, int32_t t) -> void* {
    if (d < Op::kDepth) return address_of(d, t);
    return precision.param_copies.empty() ? nullptr : precision.param_copies[t];
  };
  Table table{};
  for (const PlannedLaunch& launch :
       plan_launches(numels, variants, plan_limits<kDepth, kMixedParamBytes, true>())) {
    pack_launch(launch, numels, with_copy, &table, precision.keys);
    const dim3 grid(static_cast<unsigned>(launch.blocks.size()));
    mixed_tensor_kernel<Op>
        <<<grid, kMixedThreads, 0, stream>>>(table, op_for(launch.variant), types);
    check_launch(name);
  }
}

}  // namespace fusedoptim::cuda
