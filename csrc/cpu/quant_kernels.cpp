// Compiled once per ISA, like optim_kernels.cpp. The 8-bit state loops work a
// block at a time, in passes over it (see [note: passes over a block]).
#include "cpu/quant_kernels.h"

#include <algorithm>
#include <type_traits>

#include "cpu/code_blocks.h"
#include "cpu/float_lanes.h"
#include "cpu/isa_build.h"
#include "cpu/staged_blocks.h"
#include "cpu/static_dispatch.h"
#include "ops/quant8.h"

namespace fusedoptim::cpu {
namespace {

using ops::DType;
using ops::MomentumMode;
using ops::RootCode;
using ops::SignedCode;

template <typename Code>
ops::BlockScale<Code> scale_of(const QuantSpan& q, int64_t block) {
  return ops::BlockScale<Code>::from_absmax(q.absmax[block]);
}

// [note: passes over a block] Memory is read and written once per element.
// The update pass decodes a block's codes, updates its params and moments
// and keeps the new moments in float scratch (L1), taking their absmax; the
// encode pass turns the scratch into codes with that absmax (see [note: code
// blocks]). The update is the ops/ update in float, on the decoded moments:
// the params get the unrounded new moments, and only the state keeps their
// 8-bit form. Where the build has vectors the update pass is written with
// them (cpu/float_lanes.h): decoding inside it keeps the ALUs busy while the
// square root and the division, the longest operations, are in flight, which
// a separate decode pass left idle; elsewhere it runs element by element
// through the same functions.
template <typename Code>
void encode_block(const float* values, uint32_t absmax_bits, uint8_t* codes, float* absmax,
                  int64_t n) {
  *absmax = ops::bits_to_float(absmax_bits);
  encode_codes<Code>(values, ops::BlockScale<Code>::from_absmax(*absmax).encode, codes, n);
}

// One block of one moment, as the update pass reads and writes it.
struct MomentBlock {
  const uint8_t* codes;
  float scale;        // the block's decode scale
  float* new_values;  // scratch
  uint32_t max_bits = 0;
};

template <typename Code>
MomentBlock moment_block(const QuantSpan& q, int64_t first, int64_t block, float* scratch) {
  if (q.codes == nullptr) return {nullptr, 0.0f, scratch};
  return {q.codes + first, ops::BlockScale<Code>::from_absmax(q.absmax[block]).decode, scratch};
}

template <typename Code>
void encode_moment(const MomentBlock& b, const QuantSpan& q, int64_t first, int64_t block,
                   int64_t n) {
  encode_block<Code>(b.new_values, b.max_bits, q.codes + first, q.absmax + block, n);
}

#if FUSEDOPTIM_VECTOR_LANES
ops::AdamScalars<FloatLanes> splat_scalars(const ops::AdamScalars<float>& s) {
  return {splat(s.grad_unscale),
          splat(s.signed_grad_clip),
          splat(s.weight_decay),
          splat(s.decay_factor),
          splat(s.lerp_weight),
          splat(s.beta2),
          splat(s.one_minus_beta2),
          splat(s.inv_bias_correction2_sqrt),
          splat(s.eps),
          splat(s.neg_step_size),
          splat(s.l1_threshold)};
}
ops::SgdScalars<FloatLanes> splat_scalars(const ops::SgdScalars<float>& s) {
  return {splat(s.grad_unscale), splat(s.signed_grad_clip),    splat(s.weight_decay),
          splat(s.momentum),     splat(s.one_minus_dampening), splat(s.neg_lr),
          splat(s.l1_threshold)};
}

// The running max of the magnitude bits (ops::magnitude_bits) of x's lanes;
// kNonNegative: x holds square roots, whose sign bit is clear (or a NaN's,
// which ranks above every number either way).
template <bool kNonNegative = false>
inline UintLanes lane_max(UintLanes acc, FloatLanes x) {
  const UintLanes bits = kNonNegative ? bits_of(x) : bits_of(x) & 0x7FFFFFFFu;
  return ops::VectorMath<UintLanes>::max(bits, acc);
}
#endif

// The Adam update of n float params (see [note: passes over a block]).
template <bool kAmsgrad, bool kCoupledDecay, bool kL1, bool kScaleGrad>
void adam8bit_update(float* __restrict param, const float* __restrict grad, MomentBlock* m,
                     MomentBlock* root, MomentBlock* max_root, int64_t n,
                     const ops::AdamScalars<float>& s) {
  int64_t i = 0;
#if FUSEDOPTIM_VECTOR_LANES
  const ops::AdamScalars<FloatLanes> sv = splat_scalars(s);
  UintLanes m_max{}, root_max{}, max_root_max{};
  for (; i + kCodeLanes <= n; i += kCodeLanes) {
    FloatLanes ms[2], roots[2], max_roots[2];
    decode_lanes<SignedCode>(m->codes + i, m->scale, &ms[0], &ms[1]);
    decode_lanes<RootCode>(root->codes + i, root->scale, &roots[0], &roots[1]);
    if constexpr (kAmsgrad) {
      decode_lanes<RootCode>(max_root->codes + i, max_root->scale, &max_roots[0], &max_roots[1]);
    }
    for (int half = 0; half < 2; ++half) {
      const int64_t at = i + half * kFloatLanes;
      FloatLanes p = load_floats(param + at);
      FloatLanes exp_avg = ms[half];
      FloatLanes v = roots[half] * roots[half];
      FloatLanes v_max{};
      if constexpr (kAmsgrad) v_max = max_roots[half] * max_roots[half];
      const FloatLanes second = ops::adam_second_moment<kAmsgrad, kCoupledDecay, kScaleGrad>(
          p, load_floats(grad + at), exp_avg, v, v_max, sv);
      const FloatLanes new_root = ops::math_sqrt(v);
      FloatLanes second_root = new_root;
      if constexpr (kAmsgrad) second_root = ops::math_sqrt(second);
      ops::adam_apply<kL1>(p, exp_avg, ops::adam_denominator(second_root, sv), sv);
      store_floats(param + at, p);
      store_floats(m->new_values + at, exp_avg);
      store_floats(root->new_values + at, new_root);
      m_max = lane_max(m_max, exp_avg);
      root_max = lane_max<true>(root_max, new_root);
      if constexpr (kAmsgrad) {
        store_floats(max_root->new_values + at, second_root);
        max_root_max = lane_max<true>(max_root_max, second_root);
      }
    }
  }
  m->max_bits = max_lane(m_max);
  root->max_bits = max_lane(root_max);
  if constexpr (kAmsgrad) max_root->max_bits = max_lane(max_root_max);
#endif
  for (; i < n; ++i) {
    float p = param[i];
    float exp_avg = SignedCode::decode(m->codes[i]) * m->scale;
    const float r = RootCode::decode(root->codes[i]) * root->scale;
    float v = r * r;
    float v_max = 0.0f;
    if constexpr (kAmsgrad) {
      const float rm = RootCode::decode(max_root->codes[i]) * max_root->scale;
      v_max = rm * rm;
    }
    const float second = ops::adam_second_moment<kAmsgrad, kCoupledDecay, kScaleGrad>(
        p, grad[i], exp_avg, v, v_max, s);
    const float new_root = ops::math_sqrt(v);
    const float second_root = kAmsgrad ? ops::math_sqrt(second) : new_root;
    ops::adam_apply<kL1>(p, exp_avg, ops::adam_denominator(second_root, s), s);
    param[i] = p;
    m->new_values[i] = exp_avg;
    root->new_values[i] = new_root;
    m->max_bits = std::max(m->max_bits, ops::magnitude_bits(exp_avg));
    root->max_bits = std::max(root->max_bits, ops::magnitude_bits(new_root));
    if constexpr (kAmsgrad) {
      max_root->new_values[i] = second_root;
      max_root->max_bits = std::max(max_root->max_bits, ops::magnitude_bits(second_root));
    }
  }
}

// The SGD update of n float params; the buffer's codes are read only in kUpdate mode.
template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1, bool kScaleGrad>
void sgd8bit_update(float* __restrict param, const float* __restrict grad, MomentBlock* buffer,
                    int64_t n, const ops::SgdScalars<float>& s) {
  constexpr bool kHasBuffer = kMode != MomentumMode::kNone;
  int64_t i = 0;
#if FUSEDOPTIM_VECTOR_LANES
  const ops::SgdScalars<FloatLanes> sv = splat_scalars(s);
  UintLanes buffer_max{};
  for (; i + kCodeLanes <= n; i += kCodeLanes) {
    FloatLanes buffers[2] = {};
    if constexpr (kMode == MomentumMode::kUpdate) {
      decode_lanes<SignedCode>(buffer->codes + i, buffer->scale, &buffers[0], &buffers[1]);
    }
    for (int half = 0; half < 2; ++half) {
      const int64_t at = i + half * kFloatLanes;
      FloatLanes p = load_floats(param + at);
      ops::sgd_update<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(p, load_floats(grad + at),
                                                                        buffers[half], sv);
      store_floats(param + at, p);
      if constexpr (kHasBuffer) {
        store_floats(buffer->new_values + at, buffers[half]);
        buffer_max = lane_max(buffer_max, buffers[half]);
      }
    }
  }
  if constexpr (kHasBuffer) buffer->max_bits = max_lane(buffer_max);
#endif
  for (; i < n; ++i) {
    float p = param[i];
    float b = kMode == MomentumMode::kUpdate ? SignedCode::decode(buffer->codes[i]) * buffer->scale
                                             : 0.0f;
    ops::sgd_update<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(p, grad[i], b, s);
    param[i] = p;
    if constexpr (kHasBuffer) {
      buffer->new_values[i] = b;
      buffer->max_bits = std::max(buffer->max_bits, ops::magnitude_bits(b));
    }
  }
}

// Scratch for one block: the new moments, and the params and grads that are
// not float (half-precision params, grads of another type: see [note: staged
// blocks] in optim_kernels.cpp), as floats.
template <int kMoments>
struct BlockScratch {
  alignas(64) float moments[kMoments][kMaxQuantBlock];
  alignas(64) float param[kMaxQuantBlock];
  alignas(64) float grad[kMaxQuantBlock];
};

// The block's params and grads as floats.
template <typename Span, typename Scratch>
float* block_params(DType dtype, const Span& span, int64_t first, int64_t n, Scratch& scratch) {
  return floats_of(dtype, span.param, first, scratch.param, n);
}
template <typename Span, typename Scratch>
const float* block_grads(const Span& span, int64_t first, int64_t n, Scratch& scratch) {
  return floats_of(span.precision.grad_dtype, const_cast<void*>(span.grad), first, scratch.grad, n);
}

// The updated params back where they belong: into the param (with its
// rounding) and, with master weights, the master's rounded copy.
template <typename Span>
void store_block_params(DType dtype, const Span& span, const float* params, int64_t first,
                        int64_t n) {
  const SpanPrecision& pr = span.precision;
  store_floats_as(params, dtype, span.param, first, n, pr.rounding);
  if (pr.param_copy != nullptr) {
    narrow_from_floats(params, pr.copy_dtype, element_at(pr.param_copy, first, pr.copy_dtype), n,
                       {});
  }
}

template <bool kAmsgrad, bool kCoupledDecay, bool kL1, bool kScaleGrad>
void adam8bit_span(DType dtype, const Adam8bitSpan& span, const ops::AdamScalars<float>& s) {
  BlockScratch<kAmsgrad ? 3 : 2> scratch;
  for (int64_t first = 0, block = 0; first < span.numel; first += span.block_size, ++block) {
    const int64_t n = std::min(span.block_size, span.numel - first);
    MomentBlock m = moment_block<SignedCode>(span.exp_avg, first, block, scratch.moments[0]);
    MomentBlock root = moment_block<RootCode>(span.exp_avg_sq, first, block, scratch.moments[1]);
    MomentBlock max_root = moment_block<RootCode>(span.max_exp_avg_sq, first, block,
                                                  scratch.moments[kAmsgrad ? 2 : 1]);
    float* params = block_params(dtype, span, first, n, scratch);
    adam8bit_update<kAmsgrad, kCoupledDecay, kL1, kScaleGrad>(
        params, block_grads(span, first, n, scratch), &m, &root, &max_root, n, s);
    store_block_params(dtype, span, params, first, n);
    encode_moment<SignedCode>(m, span.exp_avg, first, block, n);
    encode_moment<RootCode>(root, span.exp_avg_sq, first, block, n);
    if (kAmsgrad) encode_moment<RootCode>(max_root, span.max_exp_avg_sq, first, block, n);
  }
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1, bool kScaleGrad>
void sgd8bit_span(DType dtype, const Sgd8bitSpan& span, const ops::SgdScalars<float>& s) {
  constexpr bool kHasBuffer = kMode != MomentumMode::kNone;
  BlockScratch<1> scratch;
  for (int64_t first = 0, block = 0; first < span.numel; first += span.block_size, ++block) {
    const int64_t n = std::min(span.block_size, span.numel - first);
    MomentBlock buffer{nullptr, 0.0f, scratch.moments[0]};
    if (kMode == MomentumMode::kUpdate) {
      buffer = moment_block<SignedCode>(span.momentum_buffer, first, block, scratch.moments[0]);
    }
    float* params = block_params(dtype, span, first, n, scratch);
    sgd8bit_update<kMode, kNesterov, kCoupledDecay, kL1, kScaleGrad>(
        params, block_grads(span, first, n, scratch), &buffer, n, s);
    store_block_params(dtype, span, params, first, n);
    if (kHasBuffer) encode_moment<SignedCode>(buffer, span.momentum_buffer, first, block, n);
  }
}

void adam8bit(DType dtype, AdamVariant variant, const Adam8bitSpan& span,
              const ops::AdamScalars<float>& s) {
  with_bool(variant.amsgrad, [&](auto amsgrad) {
    with_bool(variant.coupled_decay, [&](auto coupled) {
      with_bool(has_l1(s), [&](auto l1) {
        with_bool(scales_grad(s), [&](auto scale) {
          adam8bit_span<amsgrad(), coupled(), l1(), scale()>(dtype, span, s);
        });
      });
    });
  });
}

void sgd8bit(DType dtype, SgdVariant variant, const Sgd8bitSpan& span,
             const ops::SgdScalars<float>& s) {
  with_momentum_mode(variant.mode, [&](auto mode) {
    with_bool(variant.nesterov && variant.mode != MomentumMode::kNone, [&](auto nesterov) {
      with_bool(variant.coupled_decay, [&](auto coupled) {
        with_bool(has_l1(s), [&](auto l1) {
          with_bool(scales_grad(s), [&](auto scale) {
            sgd8bit_span<mode(), nesterov(), coupled(), l1(), scale()>(dtype, span, s);
          });
        });
      });
    });
  });
}

// The second moment is kept as its square root (see ops/quant8.h).
template <typename Code, bool kRoot>
void quantize_typed(const float* values, QuantSpan out, int64_t n, int64_t block_size) {
  alignas(64) float scratch[kMaxQuantBlock];
  for (int64_t first = 0, block = 0; first < n; first += block_size, ++block) {
    const int64_t count = std::min(block_size, n - first);
    uint32_t max_bits = 0;
#pragma omp simd reduction(max : max_bits)
    for (int64_t i = 0; i < count; ++i) {
      const float x = kRoot ? ops::math_sqrt(values[first + i]) : values[first + i];
      scratch[i] = x;
      max_bits = std::max(max_bits, ops::magnitude_bits(x));
    }
    encode_block<Code>(scratch, max_bits, out.codes + first, out.absmax + block, count);
  }
}

template <typename Code, bool kRoot>
void dequantize_typed(QuantSpan in, float* values, int64_t n, int64_t block_size) {
  for (int64_t first = 0, block = 0; first < n; first += block_size, ++block) {
    const int64_t count = std::min(block_size, n - first);
    float* out = values + first;
    decode_codes<Code>(in.codes + first, scale_of<Code>(in, block).decode, out, count);
    if (kRoot) {
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) out[i] = out[i] * out[i];
    }
  }
}

void quantize(MomentKind kind, const float* values, QuantSpan out, int64_t n, int64_t block_size) {
  if (kind == MomentKind::kSigned)
    return quantize_typed<SignedCode, false>(values, out, n, block_size);
  quantize_typed<RootCode, true>(values, out, n, block_size);
}

void dequantize(MomentKind kind, QuantSpan in, float* values, int64_t n, int64_t block_size) {
  if (kind == MomentKind::kSigned)
    return dequantize_typed<SignedCode, false>(in, values, n, block_size);
  dequantize_typed<RootCode, true>(in, values, n, block_size);
}

}  // namespace

const QuantKernels& FUSEDOPTIM_ISA_ENTRY(quant_kernels_)() {
  static const QuantKernels kernels{FUSEDOPTIM_ISA_NAME, &adam8bit, &sgd8bit, &quantize,
                                    &dequantize};
  return kernels;
}

}  // namespace fusedoptim::cpu
