// Runtime values to template arguments, for the per-ISA kernel files: each
// option that changes a loop's data flow is a template parameter there (see
// [note: options without branches] in ops/adam.h), and these pick the
// instantiation once per span, outside the loop.
#pragma once

#include <type_traits>

#include "ops/sgd.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

// with_bool(b, f) calls f(std::integral_constant<bool, b>{}).
template <typename F>
void with_bool(bool value, F&& f) {
  value ? f(std::true_type{}) : f(std::false_type{});
}

// f(S{}) for the storage type S of `dtype`.
template <typename F>
void with_storage_type(ops::DType dtype, F&& f) {
  switch (dtype) {
    case ops::DType::kFloat32:
      return f(float{});
    case ops::DType::kFloat64:
      return f(double{});
    case ops::DType::kFloat16:
      return f(ops::Half{});
    case ops::DType::kBFloat16:
      return f(ops::BFloat16{});
  }
}

template <typename F>
void with_momentum_mode(ops::MomentumMode mode, F&& f) {
  using Mode = ops::MomentumMode;
  switch (mode) {
    case Mode::kNone:
      return f(std::integral_constant<Mode, Mode::kNone>{});
    case Mode::kFirstStep:
      return f(std::integral_constant<Mode, Mode::kFirstStep>{});
    case Mode::kUpdate:
      return f(std::integral_constant<Mode, Mode::kUpdate>{});
  }
}

// The L1 step is compiled out when its threshold is 0, and the grad
// multiplies when both factors are 1: there each is the identity bit for bit.
template <typename Scalars>
bool has_l1(const Scalars& s) {
  return s.l1_threshold != 0;
}
template <typename Scalars>
bool scales_grad(const Scalars& s) {
  return !(s.grad_unscale == 1 && s.signed_grad_clip == 1);
}

}  // namespace fusedoptim::cpu
