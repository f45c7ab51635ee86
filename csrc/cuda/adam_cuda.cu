// Adam / AdamW on CUDA: the multi-tensor kernel over ops::adam_update, the
// same per-element function the CPU loops call.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cuda/dispatch.cuh"
#include "cuda/mixed_apply.cuh"
#include "cuda/multi_tensor_apply.cuh"
#include "cuda/optim_cuda.h"

namespace fusedoptim::cuda {
namespace {

// Streams: 0 param, 1 grad, 2 exp_avg, 3 exp_avg_sq [, 4 max_exp_avg_sq].
template <typename M, bool kAmsgrad, bool kCoupledDecay>
struct AdamOp {
  static constexpr int kDepth = kAmsgrad ? 5 : 4;
  ops::AdamScalars<M> s;

  __host__ __device__ static constexpr bool reads(int) { return true; }
  __host__ __device__ static constexpr bool writes(int d) { return d != 1; }
  __device__ __forceinline__ void operator()(M (&x)[kDepth]) const {
    M unused = M(0);
    ops::adam_update<kAmsgrad, kCoupledDecay>(x[0], x[1], x[2], x[3],
                                              kAmsgrad ? x[kDepth - 1] : unused, s);
  }
};

template <typename S, bool kAmsgrad, bool kCoupledDecay>
void adam_typed(const AdamBatch& batch, const std::vector<int32_t>& variants,
                const std::vector<ops::AdamScalars<ops::MathType<S>>>& scalars,
                cudaStream_t stream) {
  using Op = AdamOp<ops::MathType<S>, kAmsgrad, kCoupledDecay>;
  auto address_of = [&](int d, int32_t t) -> void* {
    switch (d) {
      case 0:
        return batch.params[t];
      case 1:
        return const_cast<void*>(batch.grads[t]);  // read-only stream
      case 2:
        return batch.exp_avgs[t];
      case 3:
        return batch.exp_avg_sqs[t];
      default:
        return batch.max_exp_avg_sqs[t];
    }
  };
  auto op_for = [&](int32_t variant) { return Op{scalars[variant]}; };
  if constexpr (std::is_same_v<ops::MathType<S>, float>) {
    if (is_mixed(batch.dtype, batch.precision)) {
      return mixed_tensor_apply<Op>(batch.numels, variants, batch.precision,
                                    mixed_types(batch.dtype, batch.precision), address_of, op_for,
                                    stream, "the mixed-precision Adam kernel launch");
    }
  }
  multi_tensor_apply<S, Op>(batch.numels, variants, address_of, op_for, stream,
                            "the Adam kernel launch");
}

}  // namespace

void adam_step(const AdamBatch& batch, const ops::AdamHyper& hyper, int device, uintptr_t stream) {
  if (batch.size() == 0) return;
  ensure_device_usable(device);
  const DeviceGuard guard(device);
  // One scalars set per distinct step value, as on the CPU (cpu/optim_cpu.cpp).
  std::vector<int32_t> variants;
  const std::vector<double> step_values = distinct_steps(batch.steps, &variants);
  const auto cuda_stream = reinterpret_cast<cudaStream_t>(stream);
  dispatch_storage(batch.dtype, [&](auto storage) {
    using S = decltype(storage);
    using M = ops::MathType<S>;
    std::vector<ops::AdamScalars<M>> scalars;
    for (double step : step_values) scalars.push_back(ops::adam_scalars<M>(hyper, step));
    // The options that change the data flow are template parameters of the
    // ops/ function (see [note: options without branches] in ops/adam.h).
    const int variant = int(hyper.amsgrad) * 2 + int(hyper.coupled_decay());
    switch (variant) {
      case 0:
        return adam_typed<S, false, false>(batch, variants, scalars, cuda_stream);
      case 1:
        return adam_typed<S, false, true>(batch, variants, scalars, cuda_stream);
      case 2:
        return adam_typed<S, true, false>(batch, variants, scalars, cuda_stream);
      default:
        return adam_typed<S, true, true>(batch, variants, scalars, cuda_stream);
    }
  });
}

}  // namespace fusedoptim::cuda
