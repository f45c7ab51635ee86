// Splits a batch of tensors into fixed-size chunks for the thread pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace fusedoptim::cpu {

// [note: chunk size] 32K elements (128 KiB of fp32 per stream) is large enough
// that handing out a chunk (one atomic add) costs nothing next to streaming
// it, and small enough that 2-16 threads finish within one chunk of each
// other on a 16M-element tensor. Tensors smaller than a chunk are one chunk
// each, so 500 tiny tensors are still spread over every thread.
constexpr int64_t kChunkElements = int64_t(1) << 15;

// Below this many elements in the whole call, waking other threads costs more
// than it saves.
constexpr int64_t kSerialElements = int64_t(1) << 15;

struct Chunk {
  int32_t tensor;   // index into the batch
  int32_t variant;  // which scalars / loop variant the tensor uses
  int64_t begin;    // first element
  int64_t numel;
};

// `variant_of(i)` gives tensor i's variant; empty tensors produce no chunk.
template <typename VariantOf>
std::vector<Chunk> make_chunks(const std::vector<int64_t>& numels, VariantOf variant_of,
                               int64_t* total_elements) {
  std::vector<Chunk> chunks;
  int64_t total = 0;
  for (size_t i = 0; i < numels.size(); ++i) {
    const int32_t variant = variant_of(i);
    for (int64_t begin = 0; begin < numels[i]; begin += kChunkElements) {
      chunks.push_back(
          {static_cast<int32_t>(i), variant, begin, std::min(kChunkElements, numels[i] - begin)});
    }
    total += numels[i];
  }
  *total_elements = total;
  return chunks;
}

inline int threads_for(int64_t total_elements, int num_threads) {
  return total_elements < kSerialElements ? 1 : num_threads;
}

}  // namespace fusedoptim::cpu
