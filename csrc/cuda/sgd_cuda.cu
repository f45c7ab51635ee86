// SGD on CUDA: the multi-tensor kernel over ops::sgd_update, the same
// per-element function the CPU loops call.
#include <type_traits>
#include <vector>

#include "cuda/dispatch.cuh"
#include "cuda/mixed_apply.cuh"
#include "cuda/multi_tensor_apply.cuh"
#include "cuda/optim_cuda.h"

namespace fusedoptim::cuda {
namespace {

using ops::MomentumMode;
template <MomentumMode kMode>
using Mode = std::integral_constant<MomentumMode, kMode>;

// Streams: 0 param, 1 grad [, 2 momentum_buffer]. kFirstStep writes the
// buffer without reading it (torch creates it as a copy of the grad).
template <typename M, MomentumMode kMode, bool kNesterov, bool kCoupledDecay>
struct SgdOp {
  static constexpr int kDepth = kMode == MomentumMode::kNone ? 2 : 3;
  ops::SgdScalars<M> s;

  __host__ __device__ static constexpr bool reads(int d) {
    return d < 2 || kMode == MomentumMode::kUpdate;
  }
  __host__ __device__ static constexpr bool writes(int d) { return d != 1; }
  __device__ __forceinline__ void operator()(M (&x)[kDepth]) const {
    M unused = M(0);
    ops::sgd_update<kMode, kNesterov, kCoupledDecay>(x[0], x[1],
                                                     kDepth == 3 ? x[kDepth - 1] : unused, s);
  }
};

template <typename S, MomentumMode kMode, bool kNesterov, bool kCoupledDecay>
void sgd_typed(const SgdBatch& batch, const std::vector<int64_t>& numels,
               const ops::SgdScalars<ops::MathType<S>>& scalars, cudaStream_t stream) {
  using Op = SgdOp<ops::MathType<S>, kMode, kNesterov, kCoupledDecay>;
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
  auto op_for = [&](int32_t) { return Op{scalars}; };
  if constexpr (std::is_same_v<ops::MathType<S>, float>) {
    if (is_mixed(batch.dtype, batch.precision)) {
      return mixed_tensor_apply<Op>(numels, variants, batch.precision,
                                    mixed_types(batch.dtype, batch.precision), address_of, op_for,
                                    stream, "the mixed-precision SGD kernel launch");
    }
  }
  multi_tensor_apply<S, Op>(numels, variants, address_of, op_for, stream, "the SGD kernel launch");
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
    // The options that change the data flow are template parameters of the
    // ops/ function (see ops/sgd.h). torch refuses nesterov without momentum,
    // so kNone needs no nesterov variant.
    auto with_decay = [&](auto mode, auto nesterov, const std::vector<int64_t>& numels) {
      constexpr MomentumMode kMode = decltype(mode)::value;
      constexpr bool kNesterov = decltype(nesterov)::value;
      if (hyper.coupled_decay()) {
        sgd_typed<S, kMode, kNesterov, true>(batch, numels, scalars, cuda_stream);
      } else {
        sgd_typed<S, kMode, kNesterov, false>(batch, numels, scalars, cuda_stream);
      }
    };
    auto with_momentum = [&](auto mode) {
      const auto numels = numels_in(decltype(mode)::value);
      if (hyper.nesterov) {
        with_decay(mode, std::true_type{}, numels);
      } else {
        with_decay(mode, std::false_type{}, numels);
      }
    };
    if (!has_momentum) {
      with_decay(Mode<MomentumMode::kNone>{}, std::false_type{}, batch.numels);
      return;
    }
    with_momentum(Mode<MomentumMode::kFirstStep>{});
    with_momentum(Mode<MomentumMode::kUpdate>{});
  });
}

}  // namespace fusedoptim::cuda
