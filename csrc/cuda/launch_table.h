// The kernel-argument table of one multi-tensor launch, and how a block finds
// its chunk in it. Plain C++ with no CUDA headers: the CUDA launcher passes a
// LaunchTable by value as a kernel argument, and the CPU build includes this
// header too, so the packing and the block -> chunk lookup the kernels use are
// unit-tested on machines without a GPU (tests/test_cuda_chunk_plan.py).
#pragma once

#include <cstdint>

#include "ops/common.h"

namespace fusedoptim::cuda {

// [note: chunk size] Each CUDA block updates one chunk of 64K elements (256 KiB
// of fp32 per stream, 1-1.25 MiB per block for Adam). Large enough that the
// fixed cost of a block (reading its table entry, the alignment test) vanishes
// next to streaming the chunk; small enough that one 16M-element tensor still
// becomes 256 blocks and fills every SM. apex and torch use the same size.
constexpr int64_t kChunkElements = int64_t(1) << 16;

// [note: kernel parameter space] The table travels as a __global__ argument, so
// one launch costs no allocation, no copy and no host sync. The argument space
// is 4096 bytes before CUDA 12.1 and 32764 bytes from 12.1 on (Volta and newer,
// driver >= 12.1: cuda/runtime.cpp refuses older drivers before any launch).
// The larger space lets one launch cover ~8x more tensors, which is what makes
// a step over hundreds of small bias/norm tensors cheap.
constexpr int kSmallParamBytes = 4096;
constexpr int kLargeParamBytes = 32764;
// Argument space left for the op's per-step scalars (AdamScalars<double> is
// 104 bytes); the launcher static_asserts that they fit.
constexpr int kScalarsParamBytes = 256;

// How many tensors and blocks one table holds, for `kDepth` pointer streams
// (Adam: param, grad, exp_avg, exp_avg_sq [, max_exp_avg_sq]; SGD: param,
// grad [, momentum_buffer]; 8-bit state has codes and absmax per moment; a
// param copy of master weights adds one: up to 9). A tensor slot costs kDepth
// addresses + a numel; a block slot costs a chunk index + a tensor slot index
// (6 bytes). Blocks get a fixed share (320 is apex's 4 KiB choice; 2048 blocks
// of 64K elements is 128M elements per launch, far beyond what keeps an H100
// busy); tensors take the rest.
//
// kKeys: each tensor slot also holds a 32-bit key, its stochastic rounding
// stream at this step (ops/random.h), 4 more bytes per slot. The fixed part
// is the block slots, the one-element key array an unkeyed table still
// declares, and up to 4 bytes that round the table up to 8-byte alignment.
template <int kDepth, int kParamBytes, bool kKeys = false>
struct TableCapacity {
  static_assert(kDepth >= 2 && kDepth <= 10, "a param and a grad stream at least");
  static constexpr int kBytes = kParamBytes - kScalarsParamBytes;
  static constexpr int kBlocks = kParamBytes >= kLargeParamBytes ? 2048 : 320;
  static constexpr int kFixedBytes = kBlocks * int(sizeof(int32_t) + sizeof(uint16_t)) + 8;
  static constexpr int kSlotBytes =
      kDepth * int(sizeof(void*)) + int(sizeof(int64_t)) + (kKeys ? int(sizeof(uint32_t)) : 0);
  static constexpr int kTensors = (kBytes - kFixedBytes) / kSlotBytes;
};

template <int kDepth, int kParamBytes, bool kKeys = false>
struct LaunchTable {
  using Capacity = TableCapacity<kDepth, kParamBytes, kKeys>;
  // Stream d of tensor slot t. Grads are read-only; they are stored without
  // const so that one array holds every stream.
  void* addresses[kDepth][Capacity::kTensors];
  int64_t numels[Capacity::kTensors];
  // Block b updates chunk block_chunk[b] of tensor slot block_slot[b].
  int32_t block_chunk[Capacity::kBlocks];
  uint32_t keys[kKeys ? Capacity::kTensors : 1];
  uint16_t block_slot[Capacity::kBlocks];
};

template <int kDepth, int kParamBytes, bool kKeys = false>
constexpr bool table_fits() {
  return sizeof(LaunchTable<kDepth, kParamBytes, kKeys>) <=
             size_t(kParamBytes - kScalarsParamBytes) &&
         TableCapacity<kDepth, kParamBytes, kKeys>::kTensors <= 65535;
}
static_assert(table_fits<2, kSmallParamBytes>() && table_fits<10, kSmallParamBytes>(), "4 KiB");
static_assert(table_fits<2, kLargeParamBytes>() && table_fits<10, kLargeParamBytes>(), "32 KiB");
static_assert(table_fits<2, kSmallParamBytes, true>() && table_fits<10, kSmallParamBytes, true>() &&
                  table_fits<2, kLargeParamBytes, true>() &&
                  table_fits<10, kLargeParamBytes, true>(),
              "keyed tables");

// The elements one block updates: [begin, begin + count) of tensor slot `slot`.
struct BlockExtent {
  int slot;
  int64_t begin;
  int count;
};

// The lookup every kernel block does first (and the planner tests replay).
template <int kDepth, int kParamBytes, bool kKeys>
FUSEDOPTIM_HOST_DEVICE BlockExtent
block_extent(const LaunchTable<kDepth, kParamBytes, kKeys>& table, int block) {
  const int slot = table.block_slot[block];
  const int64_t begin = int64_t(table.block_chunk[block]) * kChunkElements;
  const int64_t rest = table.numels[slot] - begin;
  return {slot, begin, int(rest < kChunkElements ? rest : kChunkElements)};
}

}  // namespace fusedoptim::cuda
