// Adam / AdamW per-element update: the single definition used by the CPU
// loops (cpu/optim_kernels.cpp) and the CUDA kernels (cuda/).
//
// [note: matching torch.optim] Each line mirrors one tensor op of
// torch.optim.Adam's single-tensor path (foreach=False), in the same order and
// with the same intermediate roundings, so fp32 results stay within a few ulp
// of torch after hundreds of steps. Hyperparameters arrive already converted
// to the math type, exactly as torch converts a Python float for a float op.
#pragma once

#include <cmath>

#include "ops/common.h"
#include "ops/l1.h"

namespace fusedoptim::ops {

// [note: options without branches] Options that a neutral value switches
// off exactly are not branched on: maximize flips a multiplier's sign, decoupled
// decay by 1, and the L1 step with threshold 0 is the identity, all bit-exact.
// Options that change which values flow (coupled decay, amsgrad) are template
// parameters. Runtime flags inside the loop stop gcc from vectorizing it.
// The CPU loops still drop the L1 step (kL1 = false) when its threshold is 0:
// it is five vector operations after the division, and removing them made the
// in-cache AVX-512 Adam loop about 15% faster, with identical bits. They also
// drop the two grad multiplies (kScaleGrad = false) when both factors are 1
// (no GradScaler, no clipping, no maximize): the bf16 loop is bound by its
// vector ALU work more than by the divider, and those two multiplies cost it
// about 8% in cache (AVX-512).
template <typename M>
struct AdamScalars {
  M grad_unscale;  // 1 / GradScaler scale (as torch rounds it); else 1
  // max_grad_norm clip coefficient (else 1), negated with maximize=True:
  // (g * u) * -c == -((g * u) * c) exactly, so maximize costs no extra multiply.
  M signed_grad_clip;
  M weight_decay;  // coupled L2 (Adam): g += weight_decay * p
  M decay_factor;  // decoupled (AdamW): p *= 1 - lr * weight_decay; else 1
  M lerp_weight;   // 1 - beta1
  M beta2;
  M one_minus_beta2;
  M inv_bias_correction2_sqrt;  // 1 / sqrt(1 - beta2^t)
  M eps;
  M neg_step_size;  // -lr / (1 - beta1^t)
  M l1_threshold;   // lr * l1; 0 disables
};

// torch.lerp: self + w * (end - self) for |w| < 0.5, else
// end - (end - self) * (1 - w), which is accurate for weights near 1; as
// torch's vectorized kernel, one fused multiply-add with selected operands
// (w - 1 == -(1 - w) exactly), which also keeps the CPU loop branch-free.
template <typename M>
FUSEDOPTIM_HOST_DEVICE M torch_lerp(M self, M end, M weight) {
  const auto small_weight = math_abs(weight) < 0.5f;
  const M base = small_weight ? self : end;
  const M coeff = small_weight ? weight : weight - 1.0f;
  return math_fma(coeff, end - self, base);
}

// [note: two phases] The update is split at the division: adam_moments
// updates the moments and returns the denominator, adam_apply divides and
// updates the parameter. adam_update runs both, so one element sees exactly
// the same operations either way. The CPU bf16 loop runs the phases in two
// passes over a block: the divider (sqrt, then division) has the longest
// latency there, and a loop with one long-latency operation and few dependents
// per element keeps it busy where the fused loop left it idle
// (cpu/optim_kernels.cpp). adam_moments is itself adam_second_moment (the
// moments' update) and adam_denominator (from the second moment's square
// root), which the 8-bit state loops call apart: they keep that square root
// (cpu/quant_kernels.cpp).
template <bool kAmsgrad, bool kCoupledDecay, bool kScaleGrad = true, typename M>
FUSEDOPTIM_HOST_DEVICE M adam_second_moment(M& param, M grad, M& exp_avg, M& exp_avg_sq,
                                            M& max_exp_avg_sq, const AdamScalars<M>& s) {
  if (kScaleGrad) {
    grad = grad * s.grad_unscale;  // scaler.unscale_(), clip_grad_norm_(), -grad: in torch's order
    grad = grad * s.signed_grad_clip;
  }
  param = param * s.decay_factor;
  if (kCoupledDecay) grad = math_fma(s.weight_decay, param, grad);  // grad.add(p, alpha=wd)
  exp_avg = torch_lerp(exp_avg, grad, s.lerp_weight);
  exp_avg_sq = exp_avg_sq * s.beta2;
  // addcmul_(grad, grad, value): torch fuses (value * grad) * grad + exp_avg_sq.
  exp_avg_sq = math_fma(s.one_minus_beta2 * grad, grad, exp_avg_sq);
  if (!kAmsgrad) return exp_avg_sq;
  max_exp_avg_sq = nan_propagating_max(max_exp_avg_sq, exp_avg_sq);
  return max_exp_avg_sq;
}

// torch divides by sqrt(1 - beta2^t); multiplying by its reciprocal (exact
// once beta2^t underflows, within 1 ulp before) leaves the divider to the one
// division that matters.
template <typename M>
FUSEDOPTIM_HOST_DEVICE M adam_denominator(M second_moment_root, const AdamScalars<M>& s) {
  return second_moment_root * s.inv_bias_correction2_sqrt + s.eps;
}

template <bool kAmsgrad, bool kCoupledDecay, bool kScaleGrad = true, typename M>
FUSEDOPTIM_HOST_DEVICE M adam_moments(M& param, M grad, M& exp_avg, M& exp_avg_sq,
                                      M& max_exp_avg_sq, const AdamScalars<M>& s) {
  const M second_moment = adam_second_moment<kAmsgrad, kCoupledDecay, kScaleGrad>(
      param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  return adam_denominator(math_sqrt(second_moment), s);
}

template <bool kL1 = true, typename M>
FUSEDOPTIM_HOST_DEVICE void adam_apply(M& param, M exp_avg, M denom, const AdamScalars<M>& s) {
  // addcdiv_(exp_avg, denom, value): torch's (value * exp_avg) / denom + param.
  param = param + (s.neg_step_size * exp_avg) / denom;
  if (kL1) param = l1_proximal(param, s.l1_threshold);
}

// One element. `max_exp_avg_sq` is used only when kAmsgrad; kCoupledDecay is
// Adam's L2 term (weight_decay != 0 and not decoupled); kL1 = false drops the
// L1 step where the caller knows its threshold is 0, kScaleGrad = false the
// grad multiplies where it knows both factors are 1 (see [note: options
// without branches]).
template <bool kAmsgrad, bool kCoupledDecay, bool kL1 = true, bool kScaleGrad = true, typename M>
FUSEDOPTIM_HOST_DEVICE void adam_update(M& param, M grad, M& exp_avg, M& exp_avg_sq,
                                        M& max_exp_avg_sq, const AdamScalars<M>& s) {
  const M denom = adam_moments<kAmsgrad, kCoupledDecay, kScaleGrad>(param, grad, exp_avg,
                                                                    exp_avg_sq, max_exp_avg_sq, s);
  adam_apply<kL1>(param, exp_avg, denom, s);
}

// Group hyperparameters as Python gives them (double), and the host-side step
// that turns them into per-step scalars: once per group and step, never per
// element. Each expression is the one torch.optim.Adam evaluates in Python
// double precision before the scalar reaches a float tensor op.
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay, l1;
  bool decoupled_weight_decay, amsgrad, maximize;
  double grad_unscale = 1.0, grad_clip = 1.0;

  bool coupled_decay() const { return weight_decay != 0.0 && !decoupled_weight_decay; }
};

template <typename M>
AdamScalars<M> adam_scalars(const AdamHyper& h, double step) {
  const double bias_correction1 = 1.0 - std::pow(h.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(h.beta2, step);
  const double step_size = h.lr / bias_correction1;
  AdamScalars<M> s;
  s.grad_unscale = M(h.grad_unscale);
  s.signed_grad_clip = h.maximize ? M(-h.grad_clip) : M(h.grad_clip);
  s.weight_decay = M(h.weight_decay);
  s.decay_factor = h.decoupled_weight_decay ? M(1.0 - h.lr * h.weight_decay) : M(1);
  s.lerp_weight = M(1.0 - h.beta1);
  s.beta2 = M(h.beta2);
  s.one_minus_beta2 = M(1.0 - h.beta2);
  s.inv_bias_correction2_sqrt = M(1.0 / std::pow(bias_correction2, 0.5));
  s.eps = M(h.eps);
  s.neg_step_size = M(-step_size);
  s.l1_threshold = M(h.lr * h.l1);
  return s;
}

}  // namespace fusedoptim::ops
