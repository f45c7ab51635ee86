#include "bindings/step_args.h"

#include <pybind11/stl.h>

#include <string>

#include "bindings/grad_watch.h"
#include "bindings/tensor_args.h"
#include "ops/random.h"

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

Precision checked_precision(ops::DType dtype, const PrecisionArgs& args,
                            const std::vector<int64_t>& numels) {
  Precision p;
  p.grad_dtype = args.grad_dtype < 0 ? dtype : dtype_from_code(args.grad_dtype);
  p.state_dtype = args.state_dtype < 0 ? dtype : dtype_from_code(args.state_dtype);
  const auto& param_copies = args.param_copies;
  const bool mixed = p.grad_dtype != dtype || p.state_dtype != dtype || !param_copies.empty();
  const auto is64 = [](ops::DType t) { return t == ops::DType::kFloat64; };
  if (mixed && (is64(dtype) || is64(p.grad_dtype) || is64(p.state_dtype))) {
    throw py::value_error(
        "grad_dtype/state_dtype: float64 tensors take grads and state of float64 only");
  }
  if (!param_copies.empty()) {
    p.copy_dtype = dtype_from_code(args.copy_dtype);
    if (dtype != ops::DType::kFloat32 ||
        (p.copy_dtype != ops::DType::kFloat16 && p.copy_dtype != ops::DType::kBFloat16)) {
      throw py::value_error(
          "param_copies: master weights are float32 params with float16/bfloat16 copies");
    }
    for (void* copy : addresses(param_copies, "param_copies", numels, p.copy_dtype)) {
      p.param_copies.push_back(copy);
    }
  }
  if (!args.streams.empty() && args.streams.size() != numels.size()) {
    throw py::value_error("streams: expected one per tensor (or none)");
  }
  return p;
}

std::vector<double> sgd_incremented_steps(const std::vector<uintptr_t>& step_addresses,
                                          int step_dtype_code, bool stochastic_round) {
  if (step_addresses.empty()) {
    if (stochastic_round) {
      throw py::value_error("steps: stochastic rounding needs a step counter per tensor");
    }
    return {};
  }
  return incremented_steps(step_addresses, step_dtype_code);
}

void set_stochastic_round(Precision* precision, ops::DType dtype, bool stochastic_round,
                          uint64_t seed, const std::vector<int64_t>& streams,
                          const std::vector<double>& steps) {
  precision->stochastic_round = stochastic_round;
  precision->keys.clear();
  if (!stochastic_round) return;
  if (dtype != ops::DType::kBFloat16) {
    throw py::value_error("stochastic_round: only bfloat16 params are rounded stochastically");
  }
  if (streams.size() != steps.size()) {
    throw py::value_error("streams: stochastic rounding needs one stream and one step per tensor");
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    precision->keys.push_back(ops::stream_key(seed, uint64_t(streams[i]), uint64_t(steps[i])));
  }
}

}  // namespace fusedoptim::bindings
