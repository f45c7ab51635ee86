// Multi-tensor apply: one kernel launch updates chunks of many tensors. The
// host plans the chunks (cuda/chunk_plan.h), packs each launch's table into
// the kernel arguments and launches on the caller's stream; each block looks
// up its chunk and runs the op's per-element update over it.
//
// An Op supplies:
//   static constexpr int kDepth;            pointer streams per tensor
//   static bool reads(int d), writes(int d) which streams it loads / stores
//   void operator()(M (&x)[kDepth]) const   the update of one element, in M
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cuda/chunk_plan.h"
#include "cuda/launch_table.h"
#include "cuda/runtime.h"
#include "ops/storage.h"

namespace fusedoptim::cuda {

// The argument space this build's launches use; see [note: kernel parameter
// space] in launch_table.h and [note: minimum driver] in runtime.cpp.
#if CUDART_VERSION >= 12010
constexpr int kParamBytes = kLargeParamBytes;
#else
constexpr int kParamBytes = kSmallParamBytes;
#endif

// [note: block size] 512 threads stream a 64K-element chunk in 16 (fp16) to
// 64 (fp64) passes over 16-byte vectors, with enough loads in flight per SM
// to cover DRAM latency at 2-4 resident blocks; apex and torch settled on the
// same shape for these element-wise optimizer kernels.
constexpr int kBlockThreads = 512;

// 16 bytes of storage elements: 4 fp32, 2 fp64, 8 fp16/bf16. Loaded and
// stored as one 128-bit access (ld.global.v4 / st.global.v4).
template <typename S>
struct alignas(16) Vec16 {
  static constexpr int kWidth = 16 / int(sizeof(S));
  S v[kWidth];
};

template <typename S, typename Op>
__device__ __forceinline__ void apply_element(const Op& op, S* const (&ptr)[Op::kDepth],
                                              int64_t i) {
  using M = ops::MathType<S>;
  M x[Op::kDepth];
#pragma unroll
  for (int d = 0; d < Op::kDepth; ++d) x[d] = Op::reads(d) ? ops::load(ptr[d] + i) : M(0);
  op(x);
#pragma unroll
  for (int d = 0; d < Op::kDepth; ++d) {
    if (Op::writes(d)) ops::store(ptr[d] + i, x[d]);
  }
}

template <typename S, int kTableBytes, typename Op>
__global__ void __launch_bounds__(kBlockThreads)
    multi_tensor_kernel(const LaunchTable<Op::kDepth, kTableBytes> table, const Op op) {
  using M = ops::MathType<S>;
  using V = Vec16<S>;
  constexpr int kDepth = Op::kDepth;
  constexpr int kWidth = V::kWidth;

  const BlockExtent e = block_extent(table, int(blockIdx.x));
  S* ptr[kDepth];
  bool aligned = true;
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
    ptr[d] = static_cast<S*>(table.addresses[d][e.slot]) + e.begin;
    aligned = aligned && reinterpret_cast<uintptr_t>(ptr[d]) % sizeof(V) == 0;
  }

  // [note: vector path] Chunks start kChunkElements apart, so a chunk is
  // 16-byte aligned in every stream exactly when its tensors are (torch's
  // allocator gives 512-byte aligned storage; views with an offset may not
  // be). Aligned chunks move whole 16-byte vectors and finish the last
  // count % kWidth elements one by one; unaligned chunks go element by
  // element throughout. Both paths call the same op on the same M values, so
  // results do not depend on alignment.
  int tail_begin = 0;
  if (aligned) {
    const int vectors = e.count / kWidth;
    for (int i = int(threadIdx.x); i < vectors; i += kBlockThreads) {
      V in[kDepth];
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        if (Op::reads(d)) in[d] = reinterpret_cast<const V*>(ptr[d])[i];
      }
#pragma unroll
      for (int j = 0; j < kWidth; ++j) {
        M x[kDepth];
#pragma unroll
        for (int d = 0; d < kDepth; ++d) x[d] = Op::reads(d) ? ops::load(&in[d].v[j]) : M(0);
        op(x);
#pragma unroll
        for (int d = 0; d < kDepth; ++d) {
          if (Op::writes(d)) ops::store(&in[d].v[j], x[d]);
        }
      }
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        if (Op::writes(d)) reinterpret_cast<V*>(ptr[d])[i] = in[d];
      }
    }
    tail_begin = vectors * kWidth;
  }
  for (int i = tail_begin + int(threadIdx.x); i < e.count; i += kBlockThreads) {
    apply_element<S>(op, ptr, i);
  }
}

// Updates every tensor of a batch: tensor i has numels[i] elements of type S,
// its stream d starts at address_of(d, i), and op_for(variants[i]) is the op
// (with its per-step scalars) its elements get. Launches go to `stream` on
// the current device; nothing waits for them.
template <typename S, typename Op, typename AddressOf, typename OpFor>
void multi_tensor_apply(const std::vector<int64_t>& numels, const std::vector<int32_t>& variants,
                        AddressOf address_of, OpFor op_for, cudaStream_t stream, const char* name) {
  using Table = LaunchTable<Op::kDepth, kParamBytes>;
  static_assert(sizeof(Op) <= size_t(kScalarsParamBytes), "op scalars exceed their space");
  const auto plan = plan_launches(numels, variants, plan_limits<Op::kDepth, kParamBytes>());
  Table table{};
  for (const PlannedLaunch& launch : plan) {
    pack_launch(launch, numels, address_of, &table);
    const dim3 grid(static_cast<unsigned>(launch.blocks.size()));
    multi_tensor_kernel<S, kParamBytes, Op>
        <<<grid, kBlockThreads, 0, stream>>>(table, op_for(launch.variant));
    check_launch(name);
  }
}

}  // namespace fusedoptim::cuda
