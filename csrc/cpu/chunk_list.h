// Splits a batch of tensors into fixed-size chunks, and the chunks into the
// items the thread pool hands out.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/thread_pool.h"

namespace fusedoptim::cpu {

// [note: chunk size] 32K elements (128 KiB of fp32 per stream) is large enough
// that handing out a chunk (one atomic add) costs nothing next to streaming
// it, and small enough that 2-16 threads finish within one chunk of each
// other on a 16M-element tensor.
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

// [note: packing small tensors] A tensor smaller than a chunk is one chunk,
// but the pool hands out items: runs of consecutive chunks holding at most
// kChunkElements elements in all. A large tensor's chunks are one item each;
// 500 tensors of 1,000 elements become 16 items, so the threads claim 16
// times (each claim is a contended atomic) instead of 500, and still share
// the work evenly.
struct ChunkList {
  std::vector<Chunk> chunks;
  std::vector<int64_t> item_starts{0};  // item i runs chunks [item_starts[i], item_starts[i + 1])
  int64_t total_elements = 0;

  int64_t num_items() const { return static_cast<int64_t>(item_starts.size()) - 1; }
};

// `variant_of(i)` gives tensor i's variant; empty tensors produce no chunk.
template <typename VariantOf>
ChunkList make_chunks(const std::vector<int64_t>& numels, VariantOf variant_of) {
  ChunkList list;
  int64_t item_elements = 0;
  for (size_t i = 0; i < numels.size(); ++i) {
    const int32_t variant = variant_of(i);
    for (int64_t begin = 0; begin < numels[i]; begin += kChunkElements) {
      const int64_t numel = std::min(kChunkElements, numels[i] - begin);
      if (item_elements > 0 && item_elements + numel > kChunkElements) {
        list.item_starts.push_back(static_cast<int64_t>(list.chunks.size()));
        item_elements = 0;
      }
      list.chunks.push_back({static_cast<int32_t>(i), variant, begin, numel});
      item_elements += numel;
    }
    list.total_elements += numels[i];
  }
  if (item_elements > 0) list.item_starts.push_back(static_cast<int64_t>(list.chunks.size()));
  return list;
}

inline ChunkList make_chunks(const std::vector<int64_t>& numels) {
  return make_chunks(numels, [](size_t) { return 0; });
}

inline int threads_for(int64_t total_elements, int num_threads) {
  return total_elements < kSerialElements ? 1 : num_threads;
}

// Calls body(chunk_index) for every chunk, items spread over the threads.
template <typename Body>
void parallel_for_chunks(const ChunkList& list, int num_threads, const Body& body) {
  parallel_for(list.num_items(), threads_for(list.total_elements, num_threads), [&](int64_t item) {
    for (int64_t c = list.item_starts[item]; c < list.item_starts[item + 1]; ++c) {
      body(c);
    }
  });
}

}  // namespace fusedoptim::cpu
