// Compiled once per ISA with FUSEDOPTIM_ISA=baseline|avx2|avx512 and that
// ISA's flags. The loops are written for the auto-vectorizer: `omp simd` over
// restrict pointers, the per-element math from ops/, and the option flags as
// loop-invariant selects. gcc emits the vector main loop and the scalar tail;
// `-fopt-info-vec` confirms every loop below is vectorized on each ISA.
#include "cpu/optim_kernels.h"

#ifndef FUSEDOPTIM_ISA
#error "FUSEDOPTIM_ISA must name the instruction set this file is built for"
#endif

#define FUSEDOPTIM_CONCAT_(a, b) a##b
#define FUSEDOPTIM_CONCAT(a, b) FUSEDOPTIM_CONCAT_(a, b)
#define FUSEDOPTIM_STRINGIFY_(a) #a
#define FUSEDOPTIM_STRINGIFY(a) FUSEDOPTIM_STRINGIFY_(a)

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

template <bool kAmsgrad, typename S>
void adam_span(const AdamSpan& span, const AdamStepScalars& scalars) {
  using M = MathType<S>;
  // A local copy: stores through the float pointers below could otherwise
  // alias the scalars and force a reload every iteration.
  const ops::AdamScalars<M> s = pick<M>(scalars);
  S* __restrict param = static_cast<S*>(span.param);
  const S* __restrict grad = static_cast<const S*>(span.grad);
  S* __restrict exp_avg = static_cast<S*>(span.exp_avg);
  S* __restrict exp_avg_sq = static_cast<S*>(span.exp_avg_sq);
  S* __restrict max_exp_avg_sq = static_cast<S*>(span.max_exp_avg_sq);
  const int64_t n = span.numel;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    M p = ops::load(param + i);
    M m = ops::load(exp_avg + i);
    M v = ops::load(exp_avg_sq + i);
    M v_max = kAmsgrad ? ops::load(max_exp_avg_sq + i) : M(0);
    ops::adam_update<kAmsgrad>(p, ops::load(grad + i), m, v, v_max, s);
    ops::store(param + i, p);
    ops::store(exp_avg + i, m);
    ops::store(exp_avg_sq + i, v);
    if (kAmsgrad) ops::store(max_exp_avg_sq + i, v_max);
  }
}

template <MomentumMode kMode, typename S>
void sgd_span(const SgdSpan& span, const SgdStepScalars& scalars) {
  using M = MathType<S>;
  const ops::SgdScalars<M> s = pick<M>(scalars);
  S* __restrict param = static_cast<S*>(span.param);
  const S* __restrict grad = static_cast<const S*>(span.grad);
  S* __restrict buffer = static_cast<S*>(span.momentum_buffer);
  const int64_t n = span.numel;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    M p = ops::load(param + i);
    M buf = kMode == MomentumMode::kUpdate ? ops::load(buffer + i) : M(0);
    ops::sgd_update<kMode>(p, ops::load(grad + i), buf, s);
    ops::store(param + i, p);
    if (kMode != MomentumMode::kNone) ops::store(buffer + i, buf);
  }
}

template <typename S>
void adam_typed(bool amsgrad, const AdamSpan& span, const AdamStepScalars& s) {
  amsgrad ? adam_span<true, S>(span, s) : adam_span<false, S>(span, s);
}

template <typename S>
void sgd_typed(MomentumMode mode, const SgdSpan& span, const SgdStepScalars& s) {
  switch (mode) {
    case MomentumMode::kNone:
      return sgd_span<MomentumMode::kNone, S>(span, s);
    case MomentumMode::kFirstStep:
      return sgd_span<MomentumMode::kFirstStep, S>(span, s);
    case MomentumMode::kUpdate:
      return sgd_span<MomentumMode::kUpdate, S>(span, s);
  }
}

void adam(DType dtype, bool amsgrad, const AdamSpan& span, const AdamStepScalars& s) {
  switch (dtype) {
    case DType::kFloat32:
      return adam_typed<float>(amsgrad, span, s);
    case DType::kFloat64:
      return adam_typed<double>(amsgrad, span, s);
    case DType::kFloat16:
      return adam_typed<Half>(amsgrad, span, s);
    case DType::kBFloat16:
      return adam_typed<BFloat16>(amsgrad, span, s);
  }
}

void sgd(DType dtype, MomentumMode mode, const SgdSpan& span, const SgdStepScalars& s) {
  switch (dtype) {
    case DType::kFloat32:
      return sgd_typed<float>(mode, span, s);
    case DType::kFloat64:
      return sgd_typed<double>(mode, span, s);
    case DType::kFloat16:
      return sgd_typed<Half>(mode, span, s);
    case DType::kBFloat16:
      return sgd_typed<BFloat16>(mode, span, s);
  }
}

}  // namespace

const OptimKernels& FUSEDOPTIM_CONCAT(optim_kernels_, FUSEDOPTIM_ISA)() {
  static const OptimKernels kernels{FUSEDOPTIM_STRINGIFY(FUSEDOPTIM_ISA), &adam, &sgd};
  return kernels;
}

}  // namespace fusedoptim::cpu
