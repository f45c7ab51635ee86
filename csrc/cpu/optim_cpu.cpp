#include "cpu/optim_cpu.h"

#include <algorithm>

#include "cpu/chunk_list.h"
#include "cpu/isa_dispatch.h"
#include "cpu/optim_kernels.h"

namespace fusedoptim::cpu {
namespace {

void* offset(void* base, int64_t elements, int element_bytes) {
  return base == nullptr ? nullptr : static_cast<char*>(base) + elements * element_bytes;
}
const void* offset(const void* base, int64_t elements, int element_bytes) {
  return static_cast<const char*>(base) + elements * element_bytes;
}

}  // namespace

SpanPrecision span_precision(const Precision& precision, const Chunk& c) {
  SpanPrecision out{precision.grad_dtype, precision.state_dtype};
  if (!precision.param_copies.empty()) {
    out.param_copy =
        offset(precision.param_copies[c.tensor], c.begin, ops::element_size(precision.copy_dtype));
    out.copy_dtype = precision.copy_dtype;
  }
  if (precision.stochastic_round) {
    out.rounding = {true, precision.keys[c.tensor], c.begin};
  }
  return out;
}

void adam_step(const AdamBatch& batch, const ops::AdamHyper& hyper, int num_threads) {
  // One scalars set per distinct step value (almost always exactly one).
  std::vector<int32_t> variant;
  const std::vector<double> step_values = distinct_steps(batch.steps, &variant);
  std::vector<AdamStepScalars> scalars;
  for (double step : step_values) {
    scalars.push_back(
        {ops::adam_scalars<float>(hyper, step), ops::adam_scalars<double>(hyper, step)});
  }

  const ChunkList chunks = make_chunks(batch.numels, [&](size_t i) { return variant[i]; });
  const OptimKernels& kernels = optim_kernels();
  const int bytes = ops::element_size(batch.dtype);
  const int grad_bytes = ops::element_size(batch.precision.grad_dtype);
  const int state_bytes = ops::element_size(batch.precision.state_dtype);
  const bool amsgrad = hyper.amsgrad;
  const AdamVariant loop_variant{amsgrad, hyper.coupled_decay()};
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    const AdamSpan span{
        offset(batch.params[c.tensor], c.begin, bytes),
        offset(batch.grads[c.tensor], c.begin, grad_bytes),
        offset(batch.exp_avgs[c.tensor], c.begin, state_bytes),
        offset(batch.exp_avg_sqs[c.tensor], c.begin, state_bytes),
        amsgrad ? offset(batch.max_exp_avg_sqs[c.tensor], c.begin, state_bytes) : nullptr,
        c.numel,
        span_precision(batch.precision, c)};
    kernels.adam(batch.dtype, loop_variant, span, scalars[c.variant]);
  });
}

void sgd_step(const SgdBatch& batch, const ops::SgdHyper& hyper, int num_threads) {
  const SgdStepScalars scalars{ops::sgd_scalars<float>(hyper), ops::sgd_scalars<double>(hyper)};
  const bool has_momentum = !batch.momentum_buffers.empty();
  auto mode_of = [&](size_t i) {
    if (!has_momentum) return static_cast<int32_t>(ops::MomentumMode::kNone);
    return static_cast<int32_t>(batch.new_buffers[i] ? ops::MomentumMode::kFirstStep
                                                     : ops::MomentumMode::kUpdate);
  };
  const ChunkList chunks = make_chunks(batch.numels, mode_of);
  const OptimKernels& kernels = optim_kernels();
  const int bytes = ops::element_size(batch.dtype);
  const int grad_bytes = ops::element_size(batch.precision.grad_dtype);
  const int state_bytes = ops::element_size(batch.precision.state_dtype);
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    const SgdSpan span{
        offset(batch.params[c.tensor], c.begin, bytes),
        offset(batch.grads[c.tensor], c.begin, grad_bytes),
        has_momentum ? offset(batch.momentum_buffers[c.tensor], c.begin, state_bytes) : nullptr,
        c.numel, span_precision(batch.precision, c)};
    const SgdVariant variant{static_cast<ops::MomentumMode>(c.variant), hyper.nesterov,
                             hyper.coupled_decay()};
    kernels.sgd(batch.dtype, variant, span, scalars);
  });
}

}  // namespace fusedoptim::cpu
