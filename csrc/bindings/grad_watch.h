// GradWatch: the per-step check behind the optimizers' cached plans
// (python/fusedoptim/optim/_plan.py), done in C.
//
// [note: why in C] autograd re-creates every grad each step (zero_grad
// defaults to set_to_none=True), so nothing about them can be cached: each
// step must read every grad and confirm its dtype, device, layout, size and
// contiguity (and, for one element, that it is not a lazily negated view;
// for a complex one, that it is not lazily conjugated)
// before handing its address to a kernel. From Python that is
// ~1 us per tensor (attribute lookups, bound-method calls, list building),
// more than the whole update of a model with hundreds of small tensors.
// Through the CPython API it is a few plain calls per tensor. We read the
// tensors through their public Python attributes, never torch's headers, so
// one build serves every torch version (see DESIGN.md).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

namespace fusedoptim::bindings {

class GradWatch {
 public:
  // `group_params`: the param group's list as the plan saw it. `outside[i]`:
  // group_params[i] is not part of the plan and not read here (a param with a
  // sparse grad, which the caller checks itself). `has_grad[i]`: whether it
  // had a grad then (false outside); the params with a grad are the planned
  // ones, in order, and each must keep its address (`param_addresses`), and
  // its grad the dtype, element count and device (-1: CPU) recorded for it.
  // `is_complex[k]`: the k-th planned param is complex, so it and its grad
  // must also not be lazily conjugated.
  GradWatch(const pybind11::list& group_params, const std::vector<bool>& has_grad,
            const std::vector<bool>& outside, const std::vector<uintptr_t>& param_addresses,
            const pybind11::list& dtypes, const std::vector<int64_t>& numels,
            const std::vector<bool>& is_complex, int device);

  // This step's grads of the planned params, or None when anything differs
  // from the plan (the caller then takes the slow path, which validates
  // everything and explains what is wrong). On success the grads' addresses
  // are kept for the kernel call that follows.
  pybind11::object collect(const pybind11::list& group_params);

  // The addresses found by the last successful collect(), in planned order.
  const std::vector<uintptr_t>& grad_addresses() const { return grad_addresses_; }
  size_t size() const { return planned_.size(); }

 private:
  bool grad_matches(size_t k, PyObject* grad);

  std::vector<pybind11::object> group_params_;
  std::vector<uint8_t> has_grad_;
  std::vector<uint8_t> outside_;
  std::vector<pybind11::object> planned_;
  std::vector<uintptr_t> param_addresses_;
  std::vector<pybind11::object> dtypes_;
  std::vector<int64_t> numels_;
  std::vector<uint8_t> is_complex_;
  int device_;
  std::vector<uintptr_t> grad_addresses_;
};

}  // namespace fusedoptim::bindings
