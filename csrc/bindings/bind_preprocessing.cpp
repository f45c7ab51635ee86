// _C.scaler_fit / _C.scaler_merge / _C.scaler_transform: check every argument,
// then release the GIL and run the CPU driver (cpu/scaler_cpu.h). Host memory
// only: CUDA tensors take torch's device path in
// python/fusedoptim/preprocessing/_torch_ops.py.
#include <cstdint>
#include <limits>
#include <string>

#include "bindings/bindings.h"
#include "bindings/tensor_args.h"
#include "cpu/scaler_cpu.h"

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

// A statistics array is a C-contiguous (features, 5) float64 array: weight,
// mean, m2, min, max per feature, which is FeatureStats laid out in memory.
static_assert(sizeof(cpu::FeatureStats) == 5 * sizeof(double),
              "FeatureStats must be five packed doubles");

ops::DType data_dtype(int code) {
  if (code != 0 && code != 1) {
    throw py::value_error("dtype: the scalers read float32 (0) or float64 (1), got code " +
                          std::to_string(code));
  }
  return static_cast<ops::DType>(code);
}

void check_shape(int64_t rows, int64_t features) {
  if (rows < 0) throw py::value_error("rows is negative");
  if (features < 1) throw py::value_error("features must be >= 1, got " + std::to_string(features));
  if (rows > std::numeric_limits<int64_t>::max() / features) {
    throw py::value_error("rows * features overflows int64");
  }
}

template <typename T>
T* pointer(uintptr_t address, bool nonempty, const char* name) {
  if (address == 0 && nonempty) throw py::value_error(std::string(name) + " is a null address");
  if (address % alignof(T) != 0) {
    throw py::value_error(std::string(name) + " is not aligned to its element size");
  }
  return reinterpret_cast<T*>(address);
}

const void* data_pointer(uintptr_t address, ops::DType dtype, bool nonempty, const char* name) {
  if (dtype == ops::DType::kFloat64) return pointer<const double>(address, nonempty, name);
  return pointer<const float>(address, nonempty, name);
}

int64_t scaler_fit(int dtype_code, int64_t rows, int64_t features, uintptr_t data,
                   uintptr_t weights, bool moments, uintptr_t stats, uintptr_t shift,
                   bool choose_shift, int num_threads) {
  check_threads(num_threads);
  check_shape(rows, features);
  cpu::ScalerFitInput input;
  input.dtype = data_dtype(dtype_code);
  input.data = data_pointer(data, input.dtype, rows > 0, "data");
  input.weights = pointer<const double>(weights, false, "weights");
  input.rows = rows;
  input.features = features;
  input.moments = moments;
  input.shift = pointer<double>(shift, true, "shift");
  input.choose_shift = choose_shift;
  auto* out = pointer<cpu::FeatureStats>(stats, true, "stats");
  py::gil_scoped_release release;
  return cpu::scaler_fit(input, out, num_threads);
}

void scaler_merge(int64_t features, uintptr_t stats, uintptr_t other) {
  check_shape(0, features);
  auto* into = pointer<cpu::FeatureStats>(stats, true, "stats");
  const auto* from = pointer<const cpu::FeatureStats>(other, true, "other");
  cpu::scaler_merge(into, from, features);
}

int64_t scaler_transform(int dtype_code, bool math_double, int op_code, int64_t rows,
                         int64_t features, uintptr_t src, uintptr_t dst, uintptr_t a, uintptr_t b,
                         bool clip, double low, double high, int num_threads) {
  check_threads(num_threads);
  check_shape(rows, features);
  if (op_code != 0 && op_code != 1) {
    throw py::value_error("op: unknown scaler op code " + std::to_string(op_code));
  }
  cpu::ScalerTransformInput input;
  input.dtype = data_dtype(dtype_code);
  if (input.dtype == ops::DType::kFloat64 && !math_double) {
    throw py::value_error("math_double: float64 data is always computed in double");
  }
  if (clip) {
    check_finite(low, "low");
    check_finite(high, "high");
  }
  input.math_double = math_double;
  input.op = static_cast<ops::ScalerOp>(op_code);
  input.src = data_pointer(src, input.dtype, rows > 0, "src");
  input.dst = const_cast<void*>(data_pointer(dst, input.dtype, rows > 0, "dst"));
  input.rows = rows;
  input.features = features;
  input.a = pointer<const double>(a, true, "a");
  input.b = pointer<const double>(b, true, "b");
  input.clip = clip;
  input.low = low;
  input.high = high;
  py::gil_scoped_release release;
  return cpu::scaler_transform(input, num_threads);
}

}  // namespace

void bind_preprocessing(py::module_& m) {
  m.def("scaler_fit", &scaler_fit, py::kw_only(), py::arg("dtype"), py::arg("rows"),
        py::arg("features"), py::arg("data"), py::arg("weights"), py::arg("moments"),
        py::arg("stats"), py::arg("shift"), py::arg("choose_shift"), py::arg("num_threads"),
        "Per-feature statistics of a row-major (rows, features) float32/float64 matrix, "
        "NaN skipped, written to stats, a (features, 5) float64 array (weight, mean, m2, "
        "min, max), the means relative to shift (features float64 values, first chosen "
        "from the data when choose_shift); weights: 0 or one float64 per row. Returns -1, "
        "or the index of the first +-inf element.");
  m.def("scaler_merge", &scaler_merge, py::kw_only(), py::arg("features"), py::arg("stats"),
        py::arg("other"),
        "Merges the (features, 5) statistics array other into stats (Chan's formula).");
  m.def("scaler_transform", &scaler_transform, py::kw_only(), py::arg("dtype"),
        py::arg("math_double"), py::arg("op"), py::arg("rows"), py::arg("features"), py::arg("src"),
        py::arg("dst"), py::arg("a"), py::arg("b"), py::arg("clip"), py::arg("low"),
        py::arg("high"), py::arg("num_threads"),
        "dst = (src - a) / b (op 0) or src * a + b (op 1) per feature, rounded to the data "
        "dtype after each operation, optionally clipped to [low, high]; a and b are float64 "
        "arrays of one value per feature. src may equal dst. Returns -1, or the index of "
        "the first +-inf element of src (when src == dst nothing is written then).");
}

}  // namespace fusedoptim::bindings
