#include "cpu/quant_cpu.h"

#include "cpu/chunk_list.h"
#include "cpu/isa_dispatch.h"
#include "cpu/optim_cpu.h"
#include "optim_batch.h"

namespace fusedoptim::cpu {
namespace {

static_assert(kChunkElements % kMaxQuantBlock == 0, "a chunk is whole blocks of any block size");

// Chunk c of tensor i, as the kernels see one moment: its codes and the absmax
// of its first block.
QuantSpan moment_at(const QuantMoments& moment, const Chunk& c, int64_t block_size) {
  if (moment.empty()) return {nullptr, nullptr};
  return {moment.codes[c.tensor] + c.begin, moment.absmax[c.tensor] + c.begin / block_size};
}

void* element(void* base, int64_t index, int bytes) {
  return static_cast<char*>(base) + index * bytes;
}
const void* element(const void* base, int64_t index, int bytes) {
  return static_cast<const char*>(base) + index * bytes;
}

}  // namespace

void adam8bit_step(const Adam8bitBatch& batch, const ops::AdamHyper& hyper, int num_threads) {
  std::vector<int32_t> variant;
  std::vector<ops::AdamScalars<float>> scalars;
  for (double step : distinct_steps(batch.steps, &variant)) {
    scalars.push_back(ops::adam_scalars<float>(hyper, step));
  }
  const ChunkList chunks = make_chunks(batch.numels, [&](size_t i) { return variant[i]; });
  const QuantKernels& kernels = quant_kernels();
  const int bytes = ops::element_size(batch.dtype);
  const int grad_bytes = ops::element_size(batch.precision.grad_dtype);
  const AdamVariant loop_variant{hyper.amsgrad, hyper.coupled_decay()};
  const int64_t block = batch.block_size;
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    const Adam8bitSpan span{element(batch.params[c.tensor], c.begin, bytes),
                            element(batch.grads[c.tensor], c.begin, grad_bytes),
                            moment_at(batch.exp_avg, c, block),
                            moment_at(batch.exp_avg_sq, c, block),
                            moment_at(batch.max_exp_avg_sq, c, block),
                            c.numel,
                            block,
                            span_precision(batch.precision, c)};
    kernels.adam8bit(batch.dtype, loop_variant, span, scalars[c.variant]);
  });
}

void sgd8bit_step(const Sgd8bitBatch& batch, const ops::SgdHyper& hyper, int num_threads) {
  const ops::SgdScalars<float> scalars = ops::sgd_scalars<float>(hyper);
  const bool has_momentum = !batch.momentum_buffer.empty();
  auto mode_of = [&](size_t i) {
    if (!has_momentum) return static_cast<int32_t>(ops::MomentumMode::kNone);
    return static_cast<int32_t>(batch.new_buffers[i] ? ops::MomentumMode::kFirstStep
                                                     : ops::MomentumMode::kUpdate);
  };
  const ChunkList chunks = make_chunks(batch.numels, mode_of);
  const QuantKernels& kernels = quant_kernels();
  const int bytes = ops::element_size(batch.dtype);
  const int grad_bytes = ops::element_size(batch.precision.grad_dtype);
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    const Sgd8bitSpan span{element(batch.params[c.tensor], c.begin, bytes),
                           element(batch.grads[c.tensor], c.begin, grad_bytes),
                           moment_at(batch.momentum_buffer, c, batch.block_size),
                           c.numel,
                           batch.block_size,
                           span_precision(batch.precision, c)};
    const SgdVariant variant{static_cast<ops::MomentumMode>(c.variant), hyper.nesterov,
                             hyper.coupled_decay()};
    kernels.sgd8bit(batch.dtype, variant, span, scalars);
  });
}

void quantize(MomentKind kind, const float* values, uint8_t* codes, float* absmax, int64_t n,
              int64_t block_size, int num_threads) {
  const ChunkList chunks = make_chunks({n});
  const QuantKernels& kernels = quant_kernels();
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    kernels.quantize(kind, values + c.begin, {codes + c.begin, absmax + c.begin / block_size},
                     c.numel, block_size);
  });
}

void dequantize(MomentKind kind, const uint8_t* codes, const float* absmax, float* values,
                int64_t n, int64_t block_size, int num_threads) {
  const ChunkList chunks = make_chunks({n});
  const QuantKernels& kernels = quant_kernels();
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    // The kernels' QuantSpan is writable; dequantize only reads it.
    const QuantSpan in{const_cast<uint8_t*>(codes) + c.begin,
                       const_cast<float*>(absmax) + c.begin / block_size};
    kernels.dequantize(kind, in, values + c.begin, c.numel, block_size);
  });
}

}  // namespace fusedoptim::cpu
