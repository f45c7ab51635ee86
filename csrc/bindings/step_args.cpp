#include "bindings/step_args.h"

#include <pybind11/stl.h>

#include <string>

#include "bindings/grad_watch.h"
#include "bindings/tensor_args.h"

namespace py = pybind11;

namespace fusedoptim::bindings {

std::vector<int64_t> checked_positions(const std::vector<int64_t>& positions, size_t count) {
  if (!positions.empty() && positions.size() != count) {
    throw py::value_error("grad_positions: expected one position per tensor (or none)");
  }
  for (int64_t position : positions) {
    if (position < 0) throw py::value_error("grad_positions: negative position");
  }
  return positions;
}

std::vector<const void*> grad_addresses(const py::handle grads,
                                        const std::vector<int64_t>& positions,
                                        const std::vector<int64_t>& numels, ops::DType dtype) {
  std::vector<uintptr_t> raw;
  if (py::isinstance<GradWatch>(grads)) {
    const std::vector<uintptr_t>& collected = grads.cast<const GradWatch&>().grad_addresses();
    if (positions.empty()) {
      raw = collected;
    } else {
      for (int64_t position : positions) {
        if (static_cast<size_t>(position) >= collected.size()) {
          throw py::value_error("grad_positions: position " + std::to_string(position) +
                                " is past the watched grads");
        }
        raw.push_back(collected[position]);
      }
    }
  } else {
    raw = grads.cast<std::vector<uintptr_t>>();
  }
  const std::vector<void*> checked = addresses(raw, "grads", numels, dtype);
  return {checked.begin(), checked.end()};
}

void check_finite_all(std::initializer_list<std::pair<double, const char*>> values) {
  for (auto [value, name] : values) check_finite(value, name);
}

}  // namespace fusedoptim::bindings
