// Compiled once per ISA with FUSEDOPTIM_ISA=baseline|avx2|avx512 and that
// ISA's flags. The loops are written for the auto-vectorizer: `omp simd` over
// restrict pointers, the per-element math from ops/, and the option flags as
// loop-invariant selects. gcc emits the vector main loop and the scalar tail;
// bf16 spans run two elements per iteration (cpu/half_pairs.h), fp16 spans a
// block at a time through F16C conversions (cpu/fp16_blocks.h);
// `-fopt-info-vec` confirms every loop below is vectorized on each ISA.
#include "cpu/optim_kernels.h"

#include <algorithm>
#include <type_traits>

#include "cpu/fp16_blocks.h"
#include "cpu/half_pairs.h"
#include "cpu/isa_build.h"
#include "cpu/staged_blocks.h"
#include "cpu/static_dispatch.h"
#include "ops/random.h"

namespace fusedoptim::cpu {
namespace {

using ops::BFloat16;
using ops::DType;
using ops::Half;
using ops::MathType;
using ops::MomentumMode;

template <typename M>
const ops::AdamScalars<M>& pick(const AdamStepScalars& s);
template <>
const ops::AdamScalars<float>& pick<float>(const AdamStepScalars& s) {
  return s.f32;
}
template <>
const ops::AdamScalars<double>& pick<double>(const AdamStepScalars& s) {
  return s.f64;
}
template <typename M>
const ops::SgdScalars<M>& pick(const SgdStepScalars& s);
template <>
const ops::SgdScalars<float>& pick<float>(const SgdStepScalars& s) {
  return s.f32;
}
template <>
const ops::SgdScalars<double>& pick<double>(const SgdStepScalars& s) {
  return s.f64;
}

// The element loops: ops::load/ops::store around the ops/ update, one element
// per iteration. fp32/fp64 spans run here whole, fp16 spans as float scratch
// blocks, bf16 spans their odd last element (see adam_bf16_pairs).
template <bool kAmsgrad, bool kCoupledDecay, bool kL1, bool kScaleGrad, typename S>
void adam_elements(S* __restrict param, const S* __restrict grad, S* __restrict exp_avg,
                   S* __restrict exp_avg_sq, S* __restrict max_exp_avg_sq, int64_t n,
                   const ops::AdamScalars<MathType<S>>& scalars) {
  using M = MathType<S>;
  // A local copy: stores through the pointers above could otherwise alias the
  // scalars and force a reload every iteration.
  const ops::AdamScalars<M> s = scalars;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    M p = ops::load(param + i);
    M m = ops::load(exp_avg + i);
    M v = ops::load(exp_avg_sq + i);
    M v_max = kAmsgrad ? ops::load(max_exp_avg_sq + i) : M(0);
    ops::adam_update<kAmsgrad, kCoupledDecay, kL1, kScaleGrad>(p, ops::load(grad + i), m, v, v_max,
                                                               s);
    ops::store(param + i, p);
    ops::store(exp_avg + i, m);
    ops::store(exp_avg_sq + i, v);
    if (kAmsgrad) ops::store(max_exp_avg_sq + i, v_max);
  }
}

// bf16 two elements per iteration, in the pair layout of half_pairs.h: the
// even and odd element of each pair are two independent updates, so gcc's
// vector loops need no shuffles. A block at a time, in the two passes of
// [note: two phases] in ops/adam.h: the first converts, updates the moments
// and takes the square roots; the second divides and writes the parameters.
// The float values between the passes stay in L1 scratch, unrounded.
template <bool kAmsgrad, bool kCoupledDecay, bool kL1, bool kScaleGrad, bool kStochastic>
void adam_bf16_pairs(BFloat16* __restrict param, const BFloat16* __restrict grad,
                     BFloat16* __restrict exp_avg, BFloat16* __restrict exp_avg_sq,
                     BFloat16* __restrict max_exp_avg_sq, int64_t n,
                     const ops::AdamScalars<float>& scalars, const ops::StoreRounding& rounding) {
  const ops::AdamScalars<float> s = scalars;
  const uint32_t counter = uint32_t(rounding.first_index / 2);
  const uint32_t key = ops::chunk_key(rounding.key, rounding.first_index / 2);
  constexpr int64_t kBlockPairs = 256;
  alignas(64) float p_even[kBlockPairs], p_odd[kBlockPairs];
  alignas(64) float m_even[kBlockPairs], m_odd[kBlockPairs];
  alignas(64) float d_even[kBlockPairs], d_odd[kBlockPairs];
  const int64_t pairs = n / 2;
  for (int64_t first = 0; first < pairs; first += kBlockPairs) {
    const int64_t count = std::min(kBlockPairs, pairs - first);
#pragma omp simd
    for (int64_t k = 0; k < count; ++k) {
      const int64_t j = first + k;
      const Bf16Pair p = load_pair(param, j), g = load_pair(grad, j);
      const Bf16Pair m = load_pair(exp_avg, j), v = load_pair(exp_avg_sq, j);
      const Bf16Pair v_max = kAmsgrad ? load_pair(max_exp_avg_sq, j) : Bf16Pair{0.0f, 0.0f};
      float p0 = p.even, m0 = m.even, v0 = v.even, v_max0 = v_max.even;
      float p1 = p.odd, m1 = m.odd, v1 = v.odd, v_max1 = v_max.odd;
      d_even[k] =
          ops::adam_moments<kAmsgrad, kCoupledDecay, kScaleGrad>(p0, g.even, m0, v0, v_max0, s);
      d_odd[k] =
          ops::adam_moments<kAmsgrad, kCoupledDecay, kScaleGrad>(p1, g.odd, m1, v1, v_max1, s);
      p_even[k] = p0, p_odd[k] = p1, m_even[k] = m0, m_odd[k] = m1;
      store_pair(exp_avg_sq, j, v0, v1);
      if (kAmsgrad) store_pair(max_exp_avg_sq, j, v_max0, v_max1);
    }
#pragma omp simd
    for (int64_t k = 0; k < count; ++k) {
      float p0 = p_even[k], p1 = p_odd[k];
      ops::adam_apply<kL1>(p0, m_even[k], d_even[k], s);
      ops::adam_apply<kL1>(p1, m_odd[k], d_odd[k], s);
      if (kStochastic) {
        const uint32_t random = ops::random_bits(counter + uint32_t(first + k), key);
        store_pair_stochastic(param, first + k, p0, p1, random);
      } else {
        store_pair(param, first + k, p0, p1);
      }
      store_pair(exp_avg, first + k, m_even[k], m_odd[k]);
    }
  }
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1, bool kScaleGrad,
          typename S>
void sgd_elements(S* __restrict param, const S* __restrict grad, S* __restrict buffer, int64_t n,
                  const ops::SgdScalars<MathType<S>>& scalars) {
  using M = MathType<S>;
  const ops::SgdScalars<M> s = scalars;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    M p = ops::load(param + i);
    M buf = kMode == MomentumMode::kUpdate ? ops::load(buffer + i) : M(0);
    ops::sgd_update<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(p, ops::load(grad + i), buf,
                                                                      s);
    ops::store(param + i, p);
    if (kMode != MomentumMode::kNone) ops::store(buffer + i, buf);
  }
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1, bool kScaleGrad,
          bool kStochastic>
void sgd_bf16_pairs(BFloat16* __restrict param, const BFloat16* __restrict grad,
                    BFloat16* __restrict buffer, int64_t n, const ops::SgdScalars<float>& scalars,
                    const ops::StoreRounding& rounding) {
  const ops::SgdScalars<float> s = scalars;
  const uint32_t counter = uint32_t(rounding.first_index / 2);
  const uint32_t key = ops::chunk_key(rounding.key, rounding.first_index / 2);
  const int64_t pairs = n / 2;
#pragma omp simd
  for (int64_t j = 0; j < pairs; ++j) {
    const Bf16Pair p = load_pair(param, j), g = load_pair(grad, j);
    const Bf16Pair buf =
        kMode == MomentumMode::kUpdate ? load_pair(buffer, j) : Bf16Pair{0.0f, 0.0f};
    float p0 = p.even, buf0 = buf.even, p1 = p.odd, buf1 = buf.odd;
    ops::sgd_update<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(p0, g.even, buf0, s);
    ops::sgd_update<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(p1, g.odd, buf1, s);
    if (kStochastic) {
      store_pair_stochastic(param, j, p0, p1, ops::random_bits(counter + uint32_t(j), key));
    } else {
      store_pair(param, j, p0, p1);
    }
    if (kMode != MomentumMode::kNone) store_pair(buffer, j, buf0, buf1);
  }
}

// fp16 a block at a time: widen into float scratch, run the float loop, narrow
// back (see [note: fp16 blocks] in fp16_blocks.h).
template <bool kAmsgrad, bool kCoupledDecay, bool kL1, bool kScaleGrad>
void adam_fp16_blocks(Half* param, const Half* grad, Half* exp_avg, Half* exp_avg_sq,
                      Half* max_exp_avg_sq, int64_t numel, const ops::AdamScalars<float>& s) {
  alignas(64) float p[kFp16Block], g[kFp16Block], m[kFp16Block], v[kFp16Block];
  alignas(64) float v_max[kAmsgrad ? kFp16Block : 1];
  for (int64_t begin = 0; begin < numel; begin += kFp16Block) {
    const int64_t n = std::min(kFp16Block, numel - begin);
    widen_block(param + begin, p, n);
    widen_block(grad + begin, g, n);
    widen_block(exp_avg + begin, m, n);
    widen_block(exp_avg_sq + begin, v, n);
    if (kAmsgrad) widen_block(max_exp_avg_sq + begin, v_max, n);
    adam_elements<kAmsgrad, kCoupledDecay, kL1, kScaleGrad>(p, g, m, v, v_max, n, s);
    narrow_block(p, param + begin, n);
    narrow_block(m, exp_avg + begin, n);
    narrow_block(v, exp_avg_sq + begin, n);
    if (kAmsgrad) narrow_block(v_max, max_exp_avg_sq + begin, n);
  }
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1, bool kScaleGrad>
void sgd_fp16_blocks(Half* param, const Half* grad, Half* buffer, int64_t numel,
                     const ops::SgdScalars<float>& s) {
  constexpr bool kHasBuffer = kMode != MomentumMode::kNone;
  alignas(64) float p[kFp16Block], g[kFp16Block];
  alignas(64) float buf[kHasBuffer ? kFp16Block : 1];
  for (int64_t begin = 0; begin < numel; begin += kFp16Block) {
    const int64_t n = std::min(kFp16Block, numel - begin);
    widen_block(param + begin, p, n);
    widen_block(grad + begin, g, n);
    if (kMode == MomentumMode::kUpdate) widen_block(buffer + begin, buf, n);
    sgd_elements<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(p, g, buf, n, s);
    narrow_block(p, param + begin, n);
    if (kHasBuffer) narrow_block(buf, buffer + begin, n);
  }
}

// [note: staged blocks] Mixed precision runs the float update loop above on
// float scratch: a block of each tensor that is not float is widened into
// L1 scratch, updated with the same ops/ code, and narrowed back (the param
// with its rounding, the moments to nearest); float tensors are updated in
// place. So grads of another dtype than their param are read and widened in
// the pass, no copy of them is made, and fp32 master weights write their
// half-precision param in the same pass. Every combination shares this one
// path; the plain cases keep their own loops, and bf16 params rounded
// stochastically keep the bf16 pair loops (store_pair_stochastic).
// Elements [from, span.numel) of a span whose param is `dtype` (not float64).
template <bool kAmsgrad, bool kCoupledDecay>
void adam_staged(DType dtype, const AdamSpan& span, const ops::AdamScalars<float>& s,
                 int64_t from = 0) {
  const SpanPrecision& pr = span.precision;
  alignas(64) float p[kStagedBlock], g[kStagedBlock], m[kStagedBlock], v[kStagedBlock];
  alignas(64) float v_max[kAmsgrad ? kStagedBlock : 1];
  for (int64_t begin = from; begin < span.numel; begin += kStagedBlock) {
    const int64_t n = std::min(kStagedBlock, span.numel - begin);
    float* params = floats_of(dtype, span.param, begin, p, n);
    const float* grads = floats_of(pr.grad_dtype, const_cast<void*>(span.grad), begin, g, n);
    float* exp_avg = floats_of(pr.state_dtype, span.exp_avg, begin, m, n);
    float* exp_avg_sq = floats_of(pr.state_dtype, span.exp_avg_sq, begin, v, n);
    float* max_exp_avg_sq =
        kAmsgrad ? floats_of(pr.state_dtype, span.max_exp_avg_sq, begin, v_max, n) : nullptr;
    adam_elements<kAmsgrad, kCoupledDecay, true, true>(params, grads, exp_avg, exp_avg_sq,
                                                       max_exp_avg_sq, n, s);
    store_floats_as(params, dtype, span.param, begin, n, pr.rounding);
    store_floats_as(exp_avg, pr.state_dtype, span.exp_avg, begin, n);
    store_floats_as(exp_avg_sq, pr.state_dtype, span.exp_avg_sq, begin, n);
    if (kAmsgrad) store_floats_as(max_exp_avg_sq, pr.state_dtype, span.max_exp_avg_sq, begin, n);
    if (pr.param_copy != nullptr) {
      narrow_from_floats(params, pr.copy_dtype, element_at(pr.param_copy, begin, pr.copy_dtype), n,
                         {});
    }
  }
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay>
void sgd_staged(DType dtype, const SgdSpan& span, const ops::SgdScalars<float>& s,
                int64_t from = 0) {
  constexpr bool kHasBuffer = kMode != MomentumMode::kNone;
  const SpanPrecision& pr = span.precision;
  alignas(64) float p[kStagedBlock], g[kStagedBlock], b[kHasBuffer ? kStagedBlock : 1];
  for (int64_t begin = from; begin < span.numel; begin += kStagedBlock) {
    const int64_t n = std::min(kStagedBlock, span.numel - begin);
    float* params = floats_of(dtype, span.param, begin, p, n);
    const float* grads = floats_of(pr.grad_dtype, const_cast<void*>(span.grad), begin, g, n);
    float* buffer = nullptr;
    if (kMode == MomentumMode::kUpdate) {
      buffer = floats_of(pr.state_dtype, span.momentum_buffer, begin, b, n);
    } else if (kHasBuffer) {
      buffer =
          pr.state_dtype == DType::kFloat32 ? static_cast<float*>(span.momentum_buffer) + begin : b;
    }
    sgd_elements<kMode, kNesterov, kCoupledDecay, true, true>(params, grads, buffer, n, s);
    store_floats_as(params, dtype, span.param, begin, n, pr.rounding);
    if (kHasBuffer) store_floats_as(buffer, pr.state_dtype, span.momentum_buffer, begin, n);
    if (pr.param_copy != nullptr) {
      narrow_from_floats(params, pr.copy_dtype, element_at(pr.param_copy, begin, pr.copy_dtype), n,
                         {});
    }
  }
}

template <bool kAmsgrad, bool kCoupledDecay, bool kL1, bool kScaleGrad, typename S>
void adam_span(const AdamSpan& span, const AdamStepScalars& scalars) {
  S* param = static_cast<S*>(span.param);
  const S* grad = static_cast<const S*>(span.grad);
  S* exp_avg = static_cast<S*>(span.exp_avg);
  S* exp_avg_sq = static_cast<S*>(span.exp_avg_sq);
  S* max_exp_avg_sq = static_cast<S*>(span.max_exp_avg_sq);
  const auto& s = pick<MathType<S>>(scalars);
  if constexpr (std::is_same_v<S, Half>) {
    return adam_fp16_blocks<kAmsgrad, kCoupledDecay, kL1, kScaleGrad>(
        param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, span.numel, s);
  }
  int64_t done = 0;
  if constexpr (std::is_same_v<S, BFloat16>) {
    const ops::StoreRounding& rounding = span.precision.rounding;
    done = span.numel - span.numel % 2;
    if (rounding.stochastic) {
      adam_bf16_pairs<kAmsgrad, kCoupledDecay, kL1, kScaleGrad, true>(
          param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, span.numel, s, rounding);
      return adam_staged<kAmsgrad, kCoupledDecay>(DType::kBFloat16, span, s, done);
    }
    adam_bf16_pairs<kAmsgrad, kCoupledDecay, kL1, kScaleGrad, false>(
        param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, span.numel, s, rounding);
  }
  auto at = [done](auto* base) { return base == nullptr ? base : base + done; };
  adam_elements<kAmsgrad, kCoupledDecay, kL1, kScaleGrad>(
      at(param), at(grad), at(exp_avg), at(exp_avg_sq), at(max_exp_avg_sq), span.numel - done, s);
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1, bool kScaleGrad,
          typename S>
void sgd_span(const SgdSpan& span, const SgdStepScalars& scalars) {
  S* param = static_cast<S*>(span.param);
  const S* grad = static_cast<const S*>(span.grad);
  S* buffer = static_cast<S*>(span.momentum_buffer);
  const auto& s = pick<MathType<S>>(scalars);
  if constexpr (std::is_same_v<S, Half>) {
    return sgd_fp16_blocks<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(param, grad, buffer,
                                                                             span.numel, s);
  }
  int64_t done = 0;
  if constexpr (std::is_same_v<S, BFloat16>) {
    const ops::StoreRounding& rounding = span.precision.rounding;
    done = span.numel - span.numel % 2;
    if (rounding.stochastic) {
      sgd_bf16_pairs<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad, true>(
          param, grad, buffer, span.numel, s, rounding);
      return sgd_staged<kMode, kNesterov, kCoupledDecay>(DType::kBFloat16, span, s, done);
    }
    sgd_bf16_pairs<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad, false>(
        param, grad, buffer, span.numel, s, rounding);
  }
  auto at = [done](auto* base) { return base == nullptr ? base : base + done; };
  sgd_elements<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(at(param), at(grad), at(buffer),
                                                                 span.numel - done, s);
}

// Whether a span runs the loops of its storage type (bf16 params rounded
// stochastically included) rather than the staged blocks.
bool own_loops(DType dtype, const SpanPrecision& precision) {
  SpanPrecision nearest = precision;
  nearest.rounding.stochastic = precision.rounding.stochastic && dtype != DType::kBFloat16;
  return nearest.plain(dtype);
}

void adam(DType dtype, AdamVariant variant, const AdamSpan& span, const AdamStepScalars& s) {
  if (!own_loops(dtype, span.precision)) {
    return with_bool(variant.amsgrad, [&](auto amsgrad) {
      with_bool(variant.coupled_decay,
                [&](auto coupled) { adam_staged<amsgrad(), coupled()>(dtype, span, s.f32); });
    });
  }
  with_storage_type(dtype, [&](auto storage) {
    using S = decltype(storage);
    with_bool(variant.amsgrad, [&](auto amsgrad) {
      with_bool(variant.coupled_decay, [&](auto coupled) {
        with_bool(has_l1(pick<MathType<S>>(s)), [&](auto l1) {
          with_bool(scales_grad(pick<MathType<S>>(s)), [&](auto scale) {
            adam_span<amsgrad(), coupled(), l1(), scale(), S>(span, s);
          });
        });
      });
    });
  });
}

void sgd(DType dtype, SgdVariant variant, const SgdSpan& span, const SgdStepScalars& s) {
  if (!own_loops(dtype, span.precision)) {
    return with_momentum_mode(variant.mode, [&](auto mode) {
      with_bool(variant.nesterov && variant.mode != MomentumMode::kNone, [&](auto nesterov) {
        with_bool(variant.coupled_decay, [&](auto coupled) {
          sgd_staged<mode(), nesterov(), coupled()>(dtype, span, s.f32);
        });
      });
    });
  }
  with_storage_type(dtype, [&](auto storage) {
    using S = decltype(storage);
    with_momentum_mode(variant.mode, [&](auto mode) {
      with_bool(variant.nesterov && variant.mode != MomentumMode::kNone, [&](auto nesterov) {
        with_bool(variant.coupled_decay, [&](auto coupled) {
          with_bool(has_l1(pick<MathType<S>>(s)), [&](auto l1) {
            with_bool(scales_grad(pick<MathType<S>>(s)), [&](auto scale) {
              sgd_span<mode(), nesterov(), coupled(), l1(), scale(), S>(span, s);
            });
          });
        });
      });
    });
  });
}

}  // namespace

const OptimKernels& FUSEDOPTIM_ISA_ENTRY(optim_kernels_)() {
  static const OptimKernels kernels{FUSEDOPTIM_ISA_NAME, &adam, &sgd};
  return kernels;
}

}  // namespace fusedoptim::cpu
