// Compiled once per ISA with FUSEDOPTIM_ISA=baseline|avx2|avx512 and that
// ISA's flags. The loops are written for the auto-vectorizer: `omp simd` over
// restrict pointers, the per-element math from ops/, and the option flags as
// loop-invariant selects. gcc emits the vector main loop and the scalar tail;
// `-fopt-info-vec` confirms every loop below is vectorized on each ISA.
#include "cpu/optim_kernels.h"

#include <type_traits>

#include "cpu/isa_build.h"

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

template <bool kAmsgrad, bool kCoupledDecay, typename S>
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
    ops::adam_update<kAmsgrad, kCoupledDecay>(p, ops::load(grad + i), m, v, v_max, s);
    ops::store(param + i, p);
    ops::store(exp_avg + i, m);
    ops::store(exp_avg_sq + i, v);
    if (kAmsgrad) ops::store(max_exp_avg_sq + i, v_max);
  }
}

template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, typename S>
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
    ops::sgd_update<kMode, kNesterov, kCoupledDecay>(p, ops::load(grad + i), buf, s);
    ops::store(param + i, p);
    if (kMode != MomentumMode::kNone) ops::store(buffer + i, buf);
  }
}

// Turns runtime values into template arguments: with_bool(b, f) calls
// f(std::integral_constant<bool, b>{}).
template <typename F>
void with_bool(bool value, F&& f) {
  value ? f(std::true_type{}) : f(std::false_type{});
}

template <typename F>
void with_storage_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(float{});
    case DType::kFloat64:
      return f(double{});
    case DType::kFloat16:
      return f(Half{});
    case DType::kBFloat16:
      return f(BFloat16{});
  }
}

template <typename F>
void with_momentum_mode(MomentumMode mode, F&& f) {
  using Mode = MomentumMode;
  switch (mode) {
    case Mode::kNone:
      return f(std::integral_constant<Mode, Mode::kNone>{});
    case Mode::kFirstStep:
      return f(std::integral_constant<Mode, Mode::kFirstStep>{});
    case Mode::kUpdate:
      return f(std::integral_constant<Mode, Mode::kUpdate>{});
  }
}

void adam(DType dtype, AdamVariant variant, const AdamSpan& span, const AdamStepScalars& s) {
  with_storage_type(dtype, [&](auto storage) {
    with_bool(variant.amsgrad, [&](auto amsgrad) {
      with_bool(variant.coupled_decay,
                [&](auto coupled) { adam_span<amsgrad(), coupled(), decltype(storage)>(span, s); });
    });
  });
}

void sgd(DType dtype, SgdVariant variant, const SgdSpan& span, const SgdStepScalars& s) {
  with_storage_type(dtype, [&](auto storage) {
    with_momentum_mode(variant.mode, [&](auto mode) {
      with_bool(variant.nesterov && variant.mode != MomentumMode::kNone, [&](auto nesterov) {
        with_bool(variant.coupled_decay, [&](auto coupled) {
          sgd_span<mode(), nesterov(), coupled(), decltype(storage)>(span, s);
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
