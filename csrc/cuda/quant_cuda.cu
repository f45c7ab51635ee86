// The optimizers with 8-bit state on CUDA: the same per-element functions as
// the CPU loops (ops/adam.h, ops/sgd.h, ops/quant8.h), around a block-wise
// max. Launches reuse the multi-tensor chunk plan (cuda/chunk_plan.h): each
// CUDA block takes one 64K-element chunk, whole quantization blocks.
//
// [note: quantization groups] A group of min(block_size, 256) threads
// updates one quantization block: each thread decodes, updates and keeps in
// registers block_size / group elements (at most 16, strided so that loads
// coalesce), the group takes the max of the new moments' magnitudes (warp
// shuffles, and shared memory when a group spans warps), and each thread
// encodes its elements with that absmax. Groups of one CUDA block work in
// rounds, so every thread reaches each barrier the same number of times.
#include <cuda_runtime.h>

#include <type_traits>
#include <vector>

#include "cuda/chunk_plan.h"
#include "cuda/dispatch.cuh"
#include "cuda/launch_table.h"
#include "cuda/mixed_apply.cuh"
#include "cuda/quant_cuda.h"
#include "cuda/runtime.h"
#include "ops/quant8.h"
#include "optim_batch.h"

namespace fusedoptim::cuda {
namespace {

using ops::MomentumMode;
using ops::RootCode;
using ops::SignedCode;

#if CUDART_VERSION >= 12010
constexpr int kParamBytes = kLargeParamBytes;
#else
constexpr int kParamBytes = kSmallParamBytes;
#endif

constexpr int kThreads = 256;
constexpr int kMaxPerThread = 4096 / kThreads;  // the largest block_size over the group
constexpr int kWarps = kThreads / 32;

// [note: elements per thread] A thread keeps its elements of a block in
// register arrays of a size fixed at compile time, and registers are given
// for the largest size the code could take. The 8-bit kernels come in two
// widths: one element per thread for block sizes up to kThreads (the default
// 256), and kMaxPerThread for larger blocks. One width for all would hold the
// default's launches to the wide width's register count, and with it fewer
// resident warps to hide memory latency.
inline bool wide_blocks(int64_t block_size) { return block_size > kThreads; }

// The max of v over the group of `group` threads that this thread belongs to
// (groups are aligned runs of threads; `group` a power of two).
__device__ uint32_t group_max(uint32_t v, int group, uint32_t* shared) {
  const int width = group < 32 ? group : 32;
  for (int offset = width / 2; offset > 0; offset /= 2) {
    const uint32_t other = __shfl_xor_sync(0xFFFFFFFFu, v, offset);
    v = other > v ? other : v;
  }
  if (group <= 32) return v;
  const int warp = int(threadIdx.x) / 32;
  if (threadIdx.x % 32 == 0) shared[warp] = v;
  __syncthreads();
  const int first_warp = (int(threadIdx.x) / group) * (group / 32);
  uint32_t out = 0;
  for (int w = first_warp; w < first_warp + group / 32; ++w)
    out = shared[w] > out ? shared[w] : out;
  __syncthreads();  // `shared` is reused by the next round
  return out;
}

// Where one thread's elements of a quantization block are.
struct GroupSlice {
  int64_t first;  // the block's first element within the chunk
  int lane;       // this thread's index within its group
  int group;      // threads per group
  int count;      // the block's elements (the tensor's last block may be short)
  bool active;    // false for a group with no block this round

  __device__ bool has(int k) const { return active && lane + k * group < count; }
  __device__ int64_t at(int k) const { return first + lane + int64_t(k) * group; }
};

// Calls body(slice, quant_block) for each quantization block of this CUDA
// block's chunk, round by round (see [note: quantization groups]).
template <typename Body>
__device__ void for_each_quant_block(int64_t chunk_begin, int chunk_count, int64_t block_size,
                                     const Body& body) {
  const int group = block_size < kThreads ? int(block_size) : kThreads;
  const int groups = kThreads / group;
  const int lane = int(threadIdx.x) % group;
  const int my_group = int(threadIdx.x) / group;
  const int64_t blocks = (chunk_count + block_size - 1) / block_size;
  for (int64_t round = 0; round * groups < blocks; ++round) {
    const int64_t qb = round * groups + my_group;
    const int64_t first = qb * block_size;
    const bool active = qb < blocks;
    const int count = active ? int(min(block_size, int64_t(chunk_count) - first)) : 0;
    body(GroupSlice{first, lane, group, count, active}, (chunk_begin + first) / block_size);
  }
}

template <typename Code, int N>
__device__ void encode_slice(const GroupSlice& slice, const float (&values)[N], uint32_t max_bits,
                             int per_thread, uint8_t* codes, float* absmax, int64_t quant_block,
                             uint32_t* shared) {
  const uint32_t block_max = group_max(max_bits, slice.group, shared);
  const float a = ops::bits_to_float(block_max);
  const float scale = ops::BlockScale<Code>::from_absmax(a).encode;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    if (k < per_thread && slice.has(k)) codes[slice.at(k)] = Code::encode(values[k], scale);
  }
  if (slice.active && slice.lane == 0) absmax[quant_block] = a;
}

template <typename Code>
__device__ float decode_scale(const float* absmax, int64_t quant_block, bool active) {
  return active ? ops::BlockScale<Code>::from_absmax(absmax[quant_block]).decode : 0.0f;
}

// Calls f(k, element) for this thread's elements of a slice. Unrolled, so
// that per-thread arrays indexed by k stay in registers.
template <int N, typename F>
__device__ __forceinline__ void for_each_element(const GroupSlice& slice, int per_thread,
                                                 const F& f) {
#pragma unroll
  for (int k = 0; k < N; ++k) {
    if (k < per_thread && slice.has(k)) f(k, slice.at(k));
  }
}

// Calls f with `base` as a pointer to the storage type `dtype`.
template <typename F>
__device__ __forceinline__ void with_storage(ops::DType dtype, void* base, const F& f) {
  switch (dtype) {
    case ops::DType::kFloat16:
      return f(static_cast<ops::Half*>(base));
    case ops::DType::kBFloat16:
      return f(static_cast<ops::BFloat16*>(base));
    default:
      return f(static_cast<float*>(base));
  }
}

// The param and grad streams of a chunk, of the launch's storage types (see
// cuda/mixed_apply.cuh): loads, and stores with the param's rounding and its
// master weights' copy.
//
// [note: one switch per slice] The switches on storage types sit outside the
// unrolled element loops, one per stream and slice. With a switch per element
// (16 unrolled copies of three switches), NVVM took 543 s to compile this
// file for one architecture, against 17 s for the same kernels with the types
// as template arguments; hoisted, the loops are straight-line code again.
struct ParamStreams {
  void* param;
  const void* grad;
  void* copy;
  MixedTypes types;
  uint32_t key;
  int64_t begin;  // the chunk's first element in the tensor

  template <int N>
  __device__ void load(const GroupSlice& slice, int per_thread, float (&p)[N],
                       float (&g)[N]) const {
    load_elements(types.param, param, slice, per_thread, p);
    load_elements(types.grad, grad, slice, per_thread, g);
  }

  template <int N>
  __device__ void store(const GroupSlice& slice, int per_thread, const float (&p)[N]) const {
    if (types.stochastic) {
      for_each_element<N>(slice, per_thread, [&](int k, int64_t i) {
        store_bf16_stochastic(param, i, p[k], key, begin + i);
      });
    } else {
      store_elements(types.param, param, slice, per_thread, p);
    }
    if (types.has_copy) store_elements(types.copy, copy, slice, per_thread, p);
  }

 private:
  template <int N>
  __device__ static void load_elements(ops::DType dtype, const void* base, const GroupSlice& slice,
                                       int per_thread, float (&out)[N]) {
    // Loads only: the cast drops const to share with_storage with the stores.
    with_storage(dtype, const_cast<void*>(base), [&](const auto* typed) {
      for_each_element<N>(slice, per_thread,
                          [&](int k, int64_t i) { out[k] = ops::load(typed + i); });
    });
  }

  template <int N>
  __device__ static void store_elements(ops::DType dtype, void* base, const GroupSlice& slice,
                                        int per_thread, const float (&values)[N]) {
    with_storage(dtype, base, [&](auto* typed) {
      for_each_element<N>(slice, per_thread,
                          [&](int k, int64_t i) { ops::store(typed + i, values[k]); });
    });
  }
};

template <int kDepth>
__device__ ParamStreams param_streams(const LaunchTable<kDepth, kParamBytes, true>& table,
                                      const BlockExtent& e, const MixedTypes& types) {
  auto at = [&](int d, ops::DType dtype) -> void* {
    void* base = table.addresses[d][e.slot];
    return base == nullptr ? nullptr
                           : static_cast<char*>(base) + e.begin * ops::element_size(dtype);
  };
  return {at(0, types.param),         at(1, types.grad),
          at(kDepth - 1, types.copy), types,
          table.keys[e.slot],         e.begin};
}

// Streams: 0 param, 1 grad, 2/3 exp_avg codes/absmax, 4/5 exp_avg_sq (root)
// codes/absmax [, 6/7 max_exp_avg_sq codes/absmax], and last the copy of
// master weights.
template <int kPerThread, bool kAmsgrad, bool kCoupledDecay>
__global__ void __launch_bounds__(kThreads)
    adam8bit_kernel(const LaunchTable<kAmsgrad ? 9 : 7, kParamBytes, true> table,
                    const ops::AdamScalars<float> s, const int64_t block_size,
                    const MixedTypes types) {
  __shared__ uint32_t shared[kWarps];
  const BlockExtent e = block_extent(table, int(blockIdx.x));
  const ParamStreams streams = param_streams(table, e, types);
  uint8_t* m_codes = static_cast<uint8_t*>(table.addresses[2][e.slot]) + e.begin;
  float* m_absmax = static_cast<float*>(table.addresses[3][e.slot]);
  uint8_t* root_codes = static_cast<uint8_t*>(table.addresses[4][e.slot]) + e.begin;
  float* root_absmax = static_cast<float*>(table.addresses[5][e.slot]);
  uint8_t* max_codes =
      kAmsgrad ? static_cast<uint8_t*>(table.addresses[kAmsgrad ? 6 : 0][e.slot]) + e.begin
               : nullptr;
  float* max_absmax =
      kAmsgrad ? static_cast<float*>(table.addresses[kAmsgrad ? 7 : 0][e.slot]) : nullptr;
  const int per_thread = int(block_size < kThreads ? 1 : block_size / kThreads);
  for_each_quant_block(e.begin, e.count, block_size, [&](const GroupSlice& slice, int64_t qb) {
    const float m_scale = decode_scale<SignedCode>(m_absmax, qb, slice.active);
    const float root_scale = decode_scale<RootCode>(root_absmax, qb, slice.active);
    const float max_scale = kAmsgrad ? decode_scale<RootCode>(max_absmax, qb, slice.active) : 0.0f;
    float p[kPerThread], g[kPerThread];
    streams.load(slice, per_thread, p, g);
    float new_m[kPerThread], new_root[kPerThread], new_max[kPerThread];
    uint32_t m_max = 0, root_max = 0, max_max = 0;
    for_each_element<kPerThread>(slice, per_thread, [&](int k, int64_t i) {
      float m = SignedCode::decode(m_codes[i]) * m_scale;
      const float r = RootCode::decode(root_codes[i]) * root_scale;
      float v = r * r;
      float v_max = 0.0f;
      if (kAmsgrad) {
        const float rm = RootCode::decode(max_codes[i]) * max_scale;
        v_max = rm * rm;
      }
      const float second =
          ops::adam_second_moment<kAmsgrad, kCoupledDecay>(p[k], g[k], m, v, v_max, s);
      const float root = ops::math_sqrt(v);
      const float second_root = kAmsgrad ? ops::math_sqrt(second) : root;
      ops::adam_apply(p[k], m, ops::adam_denominator(second_root, s), s);
      new_m[k] = m;
      new_root[k] = root;
      new_max[k] = second_root;
      m_max = max(m_max, ops::magnitude_bits(m));
      root_max = max(root_max, ops::magnitude_bits(root));
      max_max = max(max_max, ops::magnitude_bits(second_root));
    });
    streams.store(slice, per_thread, p);
    encode_slice<SignedCode>(slice, new_m, m_max, per_thread, m_codes, m_absmax, qb, shared);
    encode_slice<RootCode>(slice, new_root, root_max, per_thread, root_codes, root_absmax, qb,
                           shared);
    if (kAmsgrad) {
      encode_slice<RootCode>(slice, new_max, max_max, per_thread, max_codes, max_absmax, qb,
                             shared);
    }
  });
}

// Streams: 0 param, 1 grad [, 2/3 momentum_buffer codes/absmax], and last the
// copy of master weights.
template <int kPerThread, MomentumMode kMode, bool kNesterov, bool kCoupledDecay>
__global__ void __launch_bounds__(kThreads)
    sgd8bit_kernel(const LaunchTable<kMode == MomentumMode::kNone ? 3 : 5, kParamBytes, true> table,
                   const ops::SgdScalars<float> s, const int64_t block_size,
                   const MixedTypes types) {
  constexpr bool kHasBuffer = kMode != MomentumMode::kNone;
  __shared__ uint32_t shared[kWarps];
  const BlockExtent e = block_extent(table, int(blockIdx.x));
  const ParamStreams streams = param_streams(table, e, types);
  uint8_t* codes =
      kHasBuffer ? static_cast<uint8_t*>(table.addresses[kHasBuffer ? 2 : 0][e.slot]) + e.begin
                 : nullptr;
  float* absmax =
      kHasBuffer ? static_cast<float*>(table.addresses[kHasBuffer ? 3 : 0][e.slot]) : nullptr;
  const int per_thread = int(block_size < kThreads ? 1 : block_size / kThreads);
  for_each_quant_block(e.begin, e.count, block_size, [&](const GroupSlice& slice, int64_t qb) {
    const float scale =
        kMode == MomentumMode::kUpdate ? decode_scale<SignedCode>(absmax, qb, slice.active) : 0.0f;
    float p[kPerThread], g[kPerThread];
    streams.load(slice, per_thread, p, g);
    float new_buffer[kPerThread];
    uint32_t buffer_max = 0;
    for_each_element<kPerThread>(slice, per_thread, [&](int k, int64_t i) {
      float b = kMode == MomentumMode::kUpdate ? SignedCode::decode(codes[i]) * scale : 0.0f;
      ops::sgd_update<kMode, kNesterov, kCoupledDecay>(p[k], g[k], b, s);
      new_buffer[k] = b;
      buffer_max = max(buffer_max, ops::magnitude_bits(b));
    });
    streams.store(slice, per_thread, p);
    if (kHasBuffer) {
      encode_slice<SignedCode>(slice, new_buffer, buffer_max, per_thread, codes, absmax, qb,
                               shared);
    }
  });
}

template <typename Code, bool kRoot>
__global__ void __launch_bounds__(kThreads)
    quantize_kernel(const float* values, uint8_t* codes, float* absmax, int64_t n,
                    int64_t block_size) {
  __shared__ uint32_t shared[kWarps];
  const int64_t chunk_begin = int64_t(blockIdx.x) * kChunkElements;
  const int count = int(min(int64_t(kChunkElements), n - chunk_begin));
  const int per_thread = int(block_size < kThreads ? 1 : block_size / kThreads);
  for_each_quant_block(chunk_begin, count, block_size, [&](const GroupSlice& slice, int64_t qb) {
    float x[kMaxPerThread];
    uint32_t max_bits = 0;
#pragma unroll
    for (int k = 0; k < kMaxPerThread; ++k) {
      if (k >= per_thread || !slice.has(k)) continue;
      const float value = values[chunk_begin + slice.at(k)];
      x[k] = kRoot ? ops::math_sqrt(value) : value;
      max_bits = max(max_bits, ops::magnitude_bits(x[k]));
    }
    encode_slice<Code>(slice, x, max_bits, per_thread, codes + chunk_begin, absmax, qb, shared);
  });
}

template <typename Code, bool kRoot>
__global__ void __launch_bounds__(kThreads)
    dequantize_kernel(const uint8_t* codes, const float* absmax, float* values, int64_t n,
                      int64_t block_size) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * kThreads) {
    const float x =
        Code::decode(codes[i]) * ops::BlockScale<Code>::from_absmax(absmax[i / block_size]).decode;
    values[i] = kRoot ? x * x : x;
  }
}

// One launch per planned table, as multi_tensor_apply does; the last stream
// is the master weights' copy, and the table carries stochastic rounding keys.
template <int kDepth, typename AddressOf, typename Launch>
void launch_planned(const std::vector<int64_t>& numels, const std::vector<int32_t>& variants,
                    const Precision& precision, AddressOf address_of, Launch launch) {
  using Table = LaunchTable<kDepth, kParamBytes, true>;
  auto with_copy = [&](int d, int32_t t) -> void* {
    if (d < kDepth - 1) return address_of(d, t);
    return precision.param_copies.empty() ? nullptr : precision.param_copies[t];
  };
  Table table{};
  for (const PlannedLaunch& planned :
       plan_launches(numels, variants, plan_limits<kDepth, kParamBytes, true>())) {
    pack_launch(planned, numels, with_copy, &table, precision.keys);
    launch(table, planned.variant, dim3(static_cast<unsigned>(planned.blocks.size())));
  }
}

template <bool kAmsgrad, bool kCoupledDecay>
void adam8bit_typed(const Adam8bitBatch& batch, const std::vector<int32_t>& variants,
                    const std::vector<ops::AdamScalars<float>>& scalars, cudaStream_t stream) {
  constexpr int kDepth = kAmsgrad ? 9 : 7;
  const QuantMoments* moments[3] = {&batch.exp_avg, &batch.exp_avg_sq, &batch.max_exp_avg_sq};
  auto address_of = [&](int d, int32_t t) -> void* {
    if (d == 0) return batch.params[t];
    if (d == 1) return const_cast<void*>(batch.grads[t]);  // read-only stream
    const QuantMoments& q = *moments[(d - 2) / 2];
    return d % 2 == 0 ? static_cast<void*>(q.codes[t]) : static_cast<void*>(q.absmax[t]);
  };
  const MixedTypes types = mixed_types(batch.dtype, batch.precision);
  launch_planned<kDepth>(
      batch.numels, variants, batch.precision, address_of,
      [&](const auto& table, int32_t v, dim3 grid) {
        const auto kernel = wide_blocks(batch.block_size)
                                ? adam8bit_kernel<kMaxPerThread, kAmsgrad, kCoupledDecay>
                                : adam8bit_kernel<1, kAmsgrad, kCoupledDecay>;
        kernel<<<grid, kThreads, 0, stream>>>(table, scalars[v], batch.block_size, types);
        check_launch("the 8-bit Adam kernel launch");
      });
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay>
void sgd8bit_typed(const Sgd8bitBatch& batch, const std::vector<int64_t>& numels,
                   const ops::SgdScalars<float>& scalars, cudaStream_t stream) {
  constexpr int kDepth = kMode == MomentumMode::kNone ? 3 : 5;
  auto address_of = [&](int d, int32_t t) -> void* {
    switch (d) {
      case 0:
        return batch.params[t];
      case 1:
        return const_cast<void*>(batch.grads[t]);  // read-only stream
      case 2:
        return batch.momentum_buffer.codes[t];
      default:
        return batch.momentum_buffer.absmax[t];
    }
  };
  const std::vector<int32_t> variants(numels.size(), 0);
  const MixedTypes types = mixed_types(batch.dtype, batch.precision);
  launch_planned<kDepth>(
      numels, variants, batch.precision, address_of, [&](const auto& table, int32_t, dim3 grid) {
        const auto kernel = wide_blocks(batch.block_size)
                                ? sgd8bit_kernel<kMaxPerThread, kMode, kNesterov, kCoupledDecay>
                                : sgd8bit_kernel<1, kMode, kNesterov, kCoupledDecay>;
        kernel<<<grid, kThreads, 0, stream>>>(table, scalars, batch.block_size, types);
        check_launch("the 8-bit SGD kernel launch");
      });
}

}  // namespace

void adam8bit_step(const Adam8bitBatch& batch, const ops::AdamHyper& hyper, int device,
                   uintptr_t stream) {
  if (batch.size() == 0) return;
  ensure_device_usable(device);
  const DeviceGuard guard(device);
  std::vector<int32_t> variants;
  std::vector<ops::AdamScalars<float>> scalars;
  for (double step : distinct_steps(batch.steps, &variants)) {
    scalars.push_back(ops::adam_scalars<float>(hyper, step));
  }
  const auto cuda_stream = reinterpret_cast<cudaStream_t>(stream);
  const int variant = int(hyper.amsgrad) * 2 + int(hyper.coupled_decay());
  switch (variant) {
    case 0:
      return adam8bit_typed<false, false>(batch, variants, scalars, cuda_stream);
    case 1:
      return adam8bit_typed<false, true>(batch, variants, scalars, cuda_stream);
    case 2:
      return adam8bit_typed<true, false>(batch, variants, scalars, cuda_stream);
    default:
      return adam8bit_typed<true, true>(batch, variants, scalars, cuda_stream);
  }
}

void sgd8bit_step(const Sgd8bitBatch& batch, const ops::SgdHyper& hyper, int device,
                  uintptr_t stream) {
  if (batch.size() == 0) return;
  ensure_device_usable(device);
  const DeviceGuard guard(device);
  const ops::SgdScalars<float> scalars = ops::sgd_scalars<float>(hyper);
  const auto cuda_stream = reinterpret_cast<cudaStream_t>(stream);
  const bool has_momentum = !batch.momentum_buffer.empty();
  // A launch has one momentum mode: one pass per mode over the batch, the
  // other modes' tensors sized 0 (as cuda/sgd_cuda.cu does).
  auto numels_in = [&](MomentumMode mode) {
    std::vector<int64_t> numels(batch.numels);
    for (size_t i = 0; i < batch.size(); ++i) {
      const MomentumMode own = !has_momentum          ? MomentumMode::kNone
                               : batch.new_buffers[i] ? MomentumMode::kFirstStep
                                                      : MomentumMode::kUpdate;
      if (own != mode) numels[i] = 0;
    }
    return numels;
  };
  auto with_decay = [&](auto mode, auto nesterov) {
    constexpr MomentumMode kMode = decltype(mode)::value;
    constexpr bool kNesterov = decltype(nesterov)::value;
    const std::vector<int64_t> numels = numels_in(kMode);
    if (hyper.coupled_decay()) {
      sgd8bit_typed<kMode, kNesterov, true>(batch, numels, scalars, cuda_stream);
    } else {
      sgd8bit_typed<kMode, kNesterov, false>(batch, numels, scalars, cuda_stream);
    }
  };
  auto with_nesterov = [&](auto mode) {
    hyper.nesterov ? with_decay(mode, std::true_type{}) : with_decay(mode, std::false_type{});
  };
  using Mode = MomentumMode;
  if (!has_momentum) {
    return with_decay(std::integral_constant<Mode, Mode::kNone>{}, std::false_type{});
  }
  with_nesterov(std::integral_constant<Mode, Mode::kFirstStep>{});
  with_nesterov(std::integral_constant<Mode, Mode::kUpdate>{});
}

void quantize(ops::MomentKind kind, const float* values, uint8_t* codes, float* absmax, int64_t n,
              int64_t block_size, int device, uintptr_t stream) {
  if (n == 0) return;
  ensure_device_usable(device);
  const DeviceGuard guard(device);
  const dim3 grid(static_cast<unsigned>((n + kChunkElements - 1) / kChunkElements));
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  if (kind == ops::MomentKind::kSigned) {
    quantize_kernel<SignedCode, false>
        <<<grid, kThreads, 0, s>>>(values, codes, absmax, n, block_size);
  } else {
    quantize_kernel<RootCode, true><<<grid, kThreads, 0, s>>>(values, codes, absmax, n, block_size);
  }
  check_launch("the 8-bit quantize kernel launch");
}

void dequantize(ops::MomentKind kind, const uint8_t* codes, const float* absmax, float* values,
                int64_t n, int64_t block_size, int device, uintptr_t stream) {
  if (n == 0) return;
  ensure_device_usable(device);
  const DeviceGuard guard(device);
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const dim3 grid(static_cast<unsigned>(wanted < 65535 ? wanted : 65535));
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  if (kind == ops::MomentKind::kSigned) {
    dequantize_kernel<SignedCode, false>
        <<<grid, kThreads, 0, s>>>(codes, absmax, values, n, block_size);
  } else {
    dequantize_kernel<RootCode, true>
        <<<grid, kThreads, 0, s>>>(codes, absmax, values, n, block_size);
  }
  check_launch("the 8-bit dequantize kernel launch");
}

}  // namespace fusedoptim::cuda
