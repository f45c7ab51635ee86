// The host-side chunk planner of the CUDA multi-tensor launcher: which chunk of
// which tensor each block of each launch updates. Plain C++, compiled into
// every build (CPU-only ones too) so that it is unit-tested without a GPU.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda/launch_table.h"

namespace fusedoptim::cuda {

struct PlanLimits {
  int max_tensors;  // tensor slots per launch
  int max_blocks;   // blocks (= chunks) per launch
};

template <int kDepth, int kParamBytes, bool kKeys = false>
constexpr PlanLimits plan_limits() {
  return {TableCapacity<kDepth, kParamBytes, kKeys>::kTensors,
          TableCapacity<kDepth, kParamBytes, kKeys>::kBlocks};
}

struct PlannedBlock {
  int32_t slot;   // index into PlannedLaunch::tensors
  int32_t chunk;  // chunk index within that tensor
};

struct PlannedLaunch {
  int32_t variant;               // every tensor of a launch shares the kernel variant/scalars
  std::vector<int32_t> tensors;  // batch indices, one per slot
  std::vector<PlannedBlock> blocks;
};

// Splits tensor i (numels[i] elements, kernel variant variants[i]) into
// kChunkElements-sized chunks and packs them into launches of at most
// `limits` tensors and blocks. Tensors are taken variant by variant (in order
// of first appearance), then in batch order; a tensor whose chunks overflow a
// launch continues in the next one. Empty tensors get no block. Every element
// of every tensor is covered by exactly one block of one launch.
std::vector<PlannedLaunch> plan_launches(const std::vector<int64_t>& numels,
                                         const std::vector<int32_t>& variants, PlanLimits limits);

// Fills `table` for one planned launch; address_of(d, tensor) gives stream d
// of a batch tensor, and keys (a keyed table's) each tensor's key. Only the
// slots and blocks of this launch are written.
template <int kDepth, int kParamBytes, bool kKeys, typename AddressOf>
void pack_launch(const PlannedLaunch& launch, const std::vector<int64_t>& numels,
                 AddressOf address_of, LaunchTable<kDepth, kParamBytes, kKeys>* table,
                 const std::vector<uint32_t>& keys = {}) {
  for (size_t slot = 0; slot < launch.tensors.size(); ++slot) {
    const int32_t tensor = launch.tensors[slot];
    for (int d = 0; d < kDepth; ++d) table->addresses[d][slot] = address_of(d, tensor);
    table->numels[slot] = numels[tensor];
    if (kKeys) table->keys[slot] = keys.empty() ? 0u : keys[tensor];
  }
  for (size_t b = 0; b < launch.blocks.size(); ++b) {
    table->block_chunk[b] = launch.blocks[b].chunk;
    table->block_slot[b] = static_cast<uint16_t>(launch.blocks[b].slot);
  }
}

}  // namespace fusedoptim::cuda
