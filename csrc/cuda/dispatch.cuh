// The one place a runtime dtype code becomes a storage type for the kernels.
#pragma once

#include <stdexcept>

#include "ops/storage.h"

namespace fusedoptim::cuda {

template <typename F>
void dispatch_storage(ops::DType dtype, F&& f) {
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
  throw std::invalid_argument("fusedoptim: unknown dtype code");
}

}  // namespace fusedoptim::cuda
