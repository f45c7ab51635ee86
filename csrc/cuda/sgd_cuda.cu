// SGD on CUDA: the multi-tensor kernel over ops::sgd_update, the same
// per-element function the CPU loops call.
#include <vector>

#include "cuda/dispatch.cuh"
#include "cuda/multi_tensor_apply.cuh"
#include "cuda/optim_cuda.h"

namespace fusedoptim::cuda {
namespace {

using ops::MomentumMode;

// Streams: 0 param, 1 grad [, 2 momentum_buffer]. kFirstStep writes the
// buffer without reading it (torch creates it as a copy of the grad).
template <typename M, MomentumMode kMode>
struct SgdOp {
  static constexpr int kDepth = kMode == MomentumMode::kNone ? 2 : 3;
  ops::SgdScalars<M> s;

  __host__ __device__ static constexpr bool reads(int d) {
    return d < 2 || kMode == MomentumMode::kUpdate;
  }
  __host__ __device__ static constexpr bool writes(int d) { return d != 1; }
  __device__ __forceinline__ void operator()(M (&x)[kDepth]) const {
    M unused = M(0);
    ops::sgd_update<kMode>(x[0], x[1], kDepth == 3 ? x[kDepth - 1] : unused, s);
  }
};

template <typename S, MomentumMode kMode>
void sgd_typed(const SgdBatch& batch, const std::vector<int64_t>& numels,
               const ops::SgdScalars<ops::MathType<S>>& scalars, cudaStream_t stream) {
  using Op = SgdOp<ops::MathType<S>, kMode>;
  auto address_of = [&](int d, int32_t t) -> void* {
    switch (d) {
      case 0:
        return batch.params[t];
      case 1:
        return const_cast<void*>(batch.grads[t]);  // read-only stream
      default:
        return batch.momentum_buffers[t];
    }
  };
  const std::vector<int32_t> variants(numels.size(), 0);
  multi_tensor_apply<S, Op>(
      numels, variants, address_of, [&](int32_t) { return Op{scalars}; }, stream,
      "the SGD kernel launch");
}

}  // namespace

void sgd_step(const SgdBatch& batch, const ops::SgdHyper& hyper, int device, uintptr_t stream) {
  if (batch.size() == 0) return;
  ensure_device_usable(device);
  const DeviceGuard guard(device);
  const bool has_momentum = !batch.momentum_buffers.empty();
  auto mode_of = [&](size_t i) {
    if (!has_momentum) return MomentumMode::kNone;
    return batch.new_buffers[i] ? MomentumMode::kFirstStep : MomentumMode::kUpdate;
  };
  // The momentum mode is a kernel template parameter: one pass per mode, each
  // over the batch with the other modes' tensors sized 0 (the planner gives
  // empty tensors no block, and a pass with no block launches nothing).
  auto numels_in = [&](MomentumMode mode) {
    std::vector<int64_t> numels(batch.numels);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (mode_of(i) != mode) numels[i] = 0;
    }
    return numels;
  };
  const auto cuda_stream = reinterpret_cast<cudaStream_t>(stream);
  dispatch_storage(batch.dtype, [&](auto storage) {
    using S = decltype(storage);
    const auto scalars = ops::sgd_scalars<ops::MathType<S>>(hyper);
    if (!has_momentum) {
      sgd_typed<S, MomentumMode::kNone>(batch, batch.numels, scalars, cuda_stream);
      return;
    }
    sgd_typed<S, MomentumMode::kFirstStep>(batch, numels_in(MomentumMode::kFirstStep), scalars,
                                           cuda_stream);
    sgd_typed<S, MomentumMode::kUpdate>(batch, numels_in(MomentumMode::kUpdate), scalars,
                                        cuda_stream);
  });
}

}  // namespace fusedoptim::cuda
