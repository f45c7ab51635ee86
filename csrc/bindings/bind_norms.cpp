// _C.norm / _C.scale_: check every argument, then release the GIL and run the
// CPU driver. Host memory only: CUDA tensors take torch's device path in
// python/fusedoptim/penalties.py.
#include <pybind11/stl.h>

#include <string>

#include "bindings/bindings.h"
#include "bindings/tensor_args.h"
#include "bindings/written_spans.h"
#include "cpu/norm_cpu.h"

namespace py = pybind11;
using Addresses = std::vector<uintptr_t>;

namespace fusedoptim::bindings {
namespace {

// Unlike the optimizer batches, a norm's tensors may differ in dtype (a model
// with fp32 and bf16 grads is still one clip_grad_norm_ call).
cpu::NormBatch norm_batch(const std::vector<int>& dtype_codes, const std::vector<int64_t>& numels,
                          const Addresses& raw) {
  check_numels(numels);
  if (dtype_codes.size() != numels.size() || raw.size() != numels.size()) {
    throw py::value_error("dtypes, numels and addresses must have one entry per tensor (got " +
                          std::to_string(dtype_codes.size()) + ", " +
                          std::to_string(numels.size()) + ", " + std::to_string(raw.size()) + ")");
  }
  cpu::NormBatch batch;
  for (size_t i = 0; i < numels.size(); ++i) {
    const ops::DType dtype = dtype_from_code(dtype_codes[i]);
    const std::string name = "addresses[" + std::to_string(i) + "]";
    batch.dtypes.push_back(dtype);
    batch.data.push_back(addresses({raw[i]}, name.c_str(), {numels[i]}, dtype)[0]);
  }
  batch.numels = numels;
  return batch;
}

py::tuple norm(const std::vector<int>& dtypes, const std::vector<int64_t>& numels,
               const Addresses& data, int mode_code, double p, int num_threads) {
  check_threads(num_threads);
  if (mode_code < 0 || mode_code > static_cast<int>(ops::NormMode::kL1AndL2)) {
    throw py::value_error("mode: unknown norm mode code " + std::to_string(mode_code));
  }
  const auto mode = static_cast<ops::NormMode>(mode_code);
  if (mode == ops::NormMode::kLp) {
    check_finite(p, "p");
    if (p <= 0.0) throw py::value_error("p must be > 0, got " + std::to_string(p));
  }
  const cpu::NormBatch batch = norm_batch(dtypes, numels, data);
  ops::NormSums result;
  {
    py::gil_scoped_release release;
    result = cpu::norm(batch, mode, p, num_threads);
  }
  return py::make_tuple(result.first, result.second);
}

// A tensor listed twice (clip_grad_norm_ over a param listed twice) is scaled
// twice, as torch's _foreach_mul_ does: tensors that share memory are scaled
// one at a time, in order, and never from two threads at once.
void scale(const std::vector<int>& dtypes, const std::vector<int64_t>& numels,
           const Addresses& data, double coef, int num_threads) {
  check_threads(num_threads);
  const cpu::NormBatch batch = norm_batch(dtypes, numels, data);
  std::vector<Span> spans;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto begin = reinterpret_cast<uintptr_t>(batch.data[i]);
    spans.push_back({begin, begin + uintptr_t(numels[i]) * ops::element_size(batch.dtypes[i])});
  }
  const bool overlapping = find_overlap(spans).has_value();
  py::gil_scoped_release release;
  if (!overlapping) return cpu::scale(batch, coef, num_threads);
  for (size_t i = 0; i < batch.size(); ++i) {
    cpu::scale({{batch.dtypes[i]}, {batch.numels[i]}, {batch.data[i]}}, coef, num_threads);
  }
}

}  // namespace

void bind_norms(py::module_& m) {
  m.def("norm", &norm, py::kw_only(), py::arg("dtypes"), py::arg("numels"), py::arg("data"),
        py::arg("mode"), py::arg("p"), py::arg("num_threads"),
        "The norm of all elements of the tensors as one vector, summed in double: "
        "(norm, second) where second is the L2 norm for mode kL1AndL2, else 0.");
  m.def("scale_", &scale, py::kw_only(), py::arg("dtypes"), py::arg("numels"), py::arg("data"),
        py::arg("coef"), py::arg("num_threads"),
        "Multiplies every element by coef in its tensor's math type (float for "
        "fp32/fp16/bf16, double for fp64), as torch's mul_ with a 0-dim coefficient does.");
}

}  // namespace fusedoptim::bindings
