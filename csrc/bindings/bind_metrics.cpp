// _C.confusion_matrix_add: check every argument, then release the GIL and run
// the CPU counting kernel. CUDA tensors never reach this function: the Python
// backend counts them with torch's own device ops.
#include <string>

#include "bindings/bindings.h"
#include "bindings/tensor_args.h"
#include "cpu/confusion_matrix.h"

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

// C * C cells must fit in memory and in int64 index arithmetic.
constexpr int64_t kMaxClasses = int64_t(1) << 24;

void check_address(uintptr_t address, int64_t size, int64_t element_bytes, const char* name) {
  if (address == 0 && size != 0) throw py::value_error(std::string(name) + " is a null address");
  if (address % static_cast<uintptr_t>(element_bytes) != 0) {
    throw py::value_error(std::string(name) + " is not aligned to its element size");
  }
}

int64_t confusion_matrix_add(uintptr_t y_true, uintptr_t y_pred, int label_dtype, int64_t size,
                             int64_t num_classes, uintptr_t weights, uintptr_t counts,
                             int count_dtype, int num_threads) {
  check_threads(num_threads);
  if (label_dtype != 0 && label_dtype != 1) {
    throw py::value_error("label_dtype: labels must be int32 (0) or int64 (1), got code " +
                          std::to_string(label_dtype));
  }
  if (count_dtype != 0 && count_dtype != 1) {
    throw py::value_error("count_dtype: counts must be int64 (0) or float64 (1), got code " +
                          std::to_string(count_dtype));
  }
  if (size < 0) throw py::value_error("size is negative");
  if (num_classes < 1 || num_classes > kMaxClasses) {
    throw py::value_error("num_classes must be in [1, " + std::to_string(kMaxClasses) + "], got " +
                          std::to_string(num_classes));
  }
  if (weights != 0 && count_dtype != 1) {
    throw py::value_error("weights need float64 counts");
  }
  const int64_t label_bytes = label_dtype == 0 ? 4 : 8;
  check_address(y_true, size, label_bytes, "y_true");
  check_address(y_pred, size, label_bytes, "y_pred");
  check_address(weights, 0, 8, "weights");
  check_address(counts, 1, 8, "counts");

  cpu::LabelPairs pairs;
  pairs.y_true = reinterpret_cast<const void*>(y_true);
  pairs.y_pred = reinterpret_cast<const void*>(y_pred);
  pairs.dtype = static_cast<cpu::LabelDType>(label_dtype);
  pairs.size = size;
  pairs.num_classes = num_classes;
  pairs.weights = reinterpret_cast<const double*>(weights);

  py::gil_scoped_release release;
  if (count_dtype == 0) {
    return cpu::confusion_matrix_add(pairs, reinterpret_cast<int64_t*>(counts), num_threads);
  }
  return cpu::confusion_matrix_add(pairs, reinterpret_cast<double*>(counts), num_threads);
}

}  // namespace

void bind_metrics(py::module_& m) {
  m.def("confusion_matrix_add", &confusion_matrix_add, py::kw_only(), py::arg("y_true"),
        py::arg("y_pred"), py::arg("label_dtype"), py::arg("size"), py::arg("num_classes"),
        py::arg("weights"), py::arg("counts"), py::arg("count_dtype"), py::arg("num_threads"),
        "Adds (y_true[i], y_pred[i]) pairs to a C x C row-major table (1 or weights[i] each). "
        "Returns -1, or the index of the first pair with a label outside [0, num_classes) "
        "(the table is then left unchanged).");
}

}  // namespace fusedoptim::bindings
