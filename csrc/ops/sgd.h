// SGD per-element update (momentum, dampening, nesterov, coupled L2, L1):
// the single definition used by the CPU loops and the CUDA kernels.
// Mirrors torch.optim.SGD's single-tensor path op by op (see ops/adam.h).
#pragma once

#include "ops/common.h"
#include "ops/l1.h"

namespace fusedoptim::ops {

// Options as in ops/adam.h: neutral values where that is exact, template
// parameters (momentum mode, nesterov, coupled decay) where the data flow changes.
template <typename M>
struct SgdScalars {
  M grad_unscale;  // 1 / GradScaler scale (as torch rounds it); else 1
  // max_grad_norm clip coefficient (else 1), negated with maximize=True:
  // (g * u) * -c == -((g * u) * c) exactly, so maximize costs no extra multiply.
  M signed_grad_clip;
  M weight_decay;  // coupled L2: g += weight_decay * p
  M momentum;
  M one_minus_dampening;
  M neg_lr;
  M l1_threshold;  // lr * l1; 0 disables
};

// Which momentum-buffer stream an update reads.
enum class MomentumMode : int {
  kNone = 0,       // momentum == 0: no buffer at all
  kFirstStep = 1,  // the buffer is created this step: buf = g (torch clones the grad)
  kUpdate = 2,     // buf = momentum * buf + (1 - dampening) * g
};

// kL1 and kScaleGrad as in ops/adam.h: false only where the L1 threshold, or
// both grad factors, are known to be neutral.
template <MomentumMode kMode, bool kNesterov, bool kCoupledDecay, bool kL1 = true,
          bool kScaleGrad = true, typename M>
FUSEDOPTIM_HOST_DEVICE void sgd_update(M& param, M grad, M& momentum_buffer,
                                       const SgdScalars<M>& s) {
  if (kScaleGrad) {
    grad = grad * s.grad_unscale;  // scaler.unscale_(), clip_grad_norm_(), -grad: in torch's order
    grad = grad * s.signed_grad_clip;
  }
  // Each add(other, alpha) below is one fused multiply-add in torch (see
  // math_fma): other * alpha + self.
  if (kCoupledDecay) grad = math_fma(s.weight_decay, param, grad);
  if (kMode != MomentumMode::kNone) {
    if (kMode == MomentumMode::kFirstStep) {
      momentum_buffer = grad;
    } else {
      momentum_buffer = momentum_buffer * s.momentum;
      momentum_buffer = math_fma(s.one_minus_dampening, grad, momentum_buffer);
    }
    grad = kNesterov ? math_fma(s.momentum, momentum_buffer, grad) : momentum_buffer;
  }
  param = math_fma(s.neg_lr, grad, param);
  if (kL1) param = l1_proximal(param, s.l1_threshold);
}

struct SgdHyper {
  double lr, momentum, dampening, weight_decay, l1;
  bool nesterov, maximize;
  double grad_unscale = 1.0, grad_clip = 1.0;

  bool coupled_decay() const { return weight_decay != 0.0; }
};

template <typename M>
SgdScalars<M> sgd_scalars(const SgdHyper& h) {
  SgdScalars<M> s;
  s.grad_unscale = M(h.grad_unscale);
  s.signed_grad_clip = h.maximize ? M(-h.grad_clip) : M(h.grad_clip);
  s.weight_decay = M(h.weight_decay);
  s.momentum = M(h.momentum);
  s.one_minus_dampening = M(1.0 - h.dampening);
  s.neg_lr = M(-h.lr);
  s.l1_threshold = M(h.lr * h.l1);
  return s;
}

}  // namespace fusedoptim::ops
