#include "cpu/norm_cpu.h"

#include "cpu/chunk_list.h"
#include "cpu/isa_dispatch.h"

namespace fusedoptim::cpu {
namespace {

using ops::NormMode;
using ops::NormSums;

void* at(const NormBatch& batch, const Chunk& c) {
  const int bytes = ops::element_size(batch.dtypes[c.tensor]);
  return static_cast<char*>(batch.data[c.tensor]) + c.begin * bytes;
}

NormSums fold(NormMode mode, NormSums acc, NormSums part) {
  return {ops::norm_fold(mode, acc.first, part.first), acc.second + part.second};
}

NormSums in_float_range(NormSums sums) {
  return {ops::in_float_range(sums.first), ops::in_float_range(sums.second)};
}

}  // namespace

// [note: deterministic combine] Each chunk writes its own partial result, and
// the partials are folded on the calling thread in chunk order (tensor by
// tensor) once the parallel region is over. Chunk boundaries depend only on
// the tensor sizes, so the sum is the same for 1 thread or 64, whichever
// thread ran which chunk.
NormSums norm(const NormBatch& batch, NormMode mode, double p, int num_threads) {
  const ChunkList list = make_chunks(batch.numels);
  const std::vector<Chunk>& chunks = list.chunks;
  std::vector<NormSums> partials(chunks.size());
  const NormKernels& kernels = norm_kernels();
  parallel_for_chunks(list, num_threads, [&](int64_t index) {
    const Chunk& c = chunks[index];
    partials[index] = kernels.reduce(batch.dtypes[c.tensor], mode, p, at(batch, c), c.numel);
  });

  // See ops::in_float_range: torch sums each fp32/fp16/bf16 tensor in float,
  // and combines the per-tensor norms in double only when one is fp64.
  const bool limit_to_float = !ops::norm_is_max(mode);
  bool any_double = false;
  NormSums sums{0.0, 0.0};
  size_t next = 0;
  for (size_t t = 0; t < batch.size(); ++t) {
    NormSums tensor_sums{0.0, 0.0};
    for (; next < chunks.size() && chunks[next].tensor == static_cast<int32_t>(t); ++next) {
      tensor_sums = fold(mode, tensor_sums, partials[next]);
    }
    const bool is_double = batch.dtypes[t] == ops::DType::kFloat64;
    any_double = any_double || is_double;
    if (limit_to_float && !is_double) tensor_sums = in_float_range(tensor_sums);
    sums = fold(mode, sums, tensor_sums);
  }
  if (limit_to_float && !any_double) sums = in_float_range(sums);
  return ops::norm_finish(mode, sums, p);
}

void scale(const NormBatch& batch, double coef, int num_threads) {
  const ChunkList chunks = make_chunks(batch.numels);
  const NormKernels& kernels = norm_kernels();
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    kernels.scale(batch.dtypes[c.tensor], at(batch, c), c.numel, coef);
  });
}

}  // namespace fusedoptim::cpu
