// _C.storage_to_float / _C.float_to_storage: the ops/storage.h conversions on
// whole arrays, so tests can check them bit for bit against torch's casts.
#include "bindings/bindings.h"
#include "bindings/tensor_args.h"
#include "ops/storage.h"

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

template <typename S>
void to_float(const void* src, float* dst, int64_t n) {
  const S* in = static_cast<const S*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = float(ops::load(in + i));
}

template <typename S>
void from_float(const float* src, void* dst, int64_t n) {
  S* out = static_cast<S*>(dst);
  for (int64_t i = 0; i < n; ++i) ops::store(out + i, ops::MathType<S>(src[i]));
}

void storage_to_float(int dtype_code, uintptr_t src, uintptr_t dst, int64_t n) {
  const auto dtype = dtype_from_code(dtype_code);
  auto* out = reinterpret_cast<float*>(dst);
  const auto* in = reinterpret_cast<const void*>(src);
  switch (dtype) {
    case ops::DType::kFloat32:
      return to_float<float>(in, out, n);
    case ops::DType::kFloat64:
      return to_float<double>(in, out, n);
    case ops::DType::kFloat16:
      return to_float<ops::Half>(in, out, n);
    case ops::DType::kBFloat16:
      return to_float<ops::BFloat16>(in, out, n);
  }
}

void float_to_storage(int dtype_code, uintptr_t src, uintptr_t dst, int64_t n) {
  const auto dtype = dtype_from_code(dtype_code);
  const auto* in = reinterpret_cast<const float*>(src);
  auto* out = reinterpret_cast<void*>(dst);
  switch (dtype) {
    case ops::DType::kFloat32:
      return from_float<float>(in, out, n);
    case ops::DType::kFloat64:
      return from_float<double>(in, out, n);
    case ops::DType::kFloat16:
      return from_float<ops::Half>(in, out, n);
    case ops::DType::kBFloat16:
      return from_float<ops::BFloat16>(in, out, n);
  }
}

}  // namespace

void bind_convert(py::module_& m) {
  m.def("storage_to_float", &storage_to_float, py::arg("dtype"), py::arg("src"), py::arg("dst"),
        py::arg("n"), "Widen n elements of storage type `dtype` at src into float32 at dst.");
  m.def("float_to_storage", &float_to_storage, py::arg("dtype"), py::arg("src"), py::arg("dst"),
        py::arg("n"), "Round n float32 elements at src to storage type `dtype` at dst.");
}

}  // namespace fusedoptim::bindings
