#include "bindings/grad_watch.h"

#include <pybind11/stl.h>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

// [note: direct getters] Reaching a torch getter by name costs extra work
// before torch's own code runs: the type's attribute cache, the tensor's
// instance __dict__, a bound method. For the two plain tensor types we look
// each descriptor up once in torch._C.TensorBase, where torch defines them,
// and call it directly: the same C function Python would reach. That took the
// check of 500 grads from 843 to 719 ns per param; the rest is torch's own
// getter code. Other types (subclasses that may override an attribute) go
// through the normal attribute protocol.
enum Attr {
  kGrad,
  kDtype,
  kLayout,
  kDataPtr,
  kNumel,
  kIsContiguous,
  kIsNeg,
  kIsConj,
  kGetDevice,
  kNumAttrs
};
constexpr const char* kAttrNames[kNumAttrs] = {"grad",     "dtype",   "layout",
                                               "data_ptr", "numel",   "is_contiguous",
                                               "is_neg",   "is_conj", "get_device"};
constexpr bool kIsMethod[kNumAttrs] = {false, false, false, true, true, true, true, true, true};

class TensorAttrs {
 public:
  TensorAttrs() {
    const py::module_ torch = py::module_::import("torch");
    tensor_type_ = torch.attr("Tensor").ptr();
    parameter_type_ = torch.attr("nn").attr("Parameter").ptr();
    strided_ = torch.attr("strided").ptr();
    const py::object base = torch.attr("_C").attr("TensorBase");
    for (int a = 0; a < kNumAttrs; ++a) {
      names_[a] = PyUnicode_InternFromString(kAttrNames[a]);
      // Kept for the process lifetime, like the interned names.
      descriptors_[a] = py::object(base.attr(names_[a])).release().ptr();
    }
  }

  // obj.<attr>, or obj.<attr>() for a method.
  py::object get(PyObject* obj, Attr a) const {
    PyObject* value;
    const PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(obj));
    if (type != tensor_type_ && type != parameter_type_) {
      value = kIsMethod[a] ? PyObject_CallMethodNoArgs(obj, names_[a])
                           : PyObject_GetAttr(obj, names_[a]);
    } else if (kIsMethod[a]) {
      value = PyObject_Vectorcall(descriptors_[a], &obj, 1, nullptr);
    } else {
      value = Py_TYPE(descriptors_[a])
                  ->tp_descr_get(descriptors_[a], obj, reinterpret_cast<PyObject*>(Py_TYPE(obj)));
    }
    if (value == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(value);
  }

  // torch.strided, the layout every planned grad must have.
  PyObject* strided() const { return strided_; }

 private:
  PyObject* tensor_type_;
  PyObject* strided_;
  PyObject* parameter_type_;
  PyObject* names_[kNumAttrs];
  PyObject* descriptors_[kNumAttrs];
};

const TensorAttrs& tensor_attrs() {
  static const TensorAttrs instance;
  return instance;
}

// An int a getter returned, or `fallback` when it is not a plain int.
long long as_int(const py::object& value, long long fallback) {
  if (!PyLong_Check(value.ptr())) return fallback;
  const long long result = PyLong_AsLongLong(value.ptr());
  if (result == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return fallback;
  }
  return result;
}

uintptr_t address_of(PyObject* tensor) {
  const py::object ptr = tensor_attrs().get(tensor, kDataPtr);
  const unsigned long long value = PyLong_AsUnsignedLongLong(ptr.ptr());
  if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    throw py::error_already_set();
  }
  return static_cast<uintptr_t>(value);
}

}  // namespace

GradWatch::GradWatch(const py::list& group_params, const std::vector<bool>& has_grad,
                     const std::vector<bool>& outside,
                     const std::vector<uintptr_t>& param_addresses, const py::list& dtypes,
                     const std::vector<int64_t>& numels, const std::vector<bool>& is_complex,
                     int device)
    : param_addresses_(param_addresses), numels_(numels), device_(device) {
  if (has_grad.size() != group_params.size() || outside.size() != group_params.size()) {
    throw py::value_error("has_grad and outside: expected one flag per group param");
  }
  for (size_t i = 0; i < group_params.size(); ++i) {
    if (has_grad[i] && outside[i]) throw py::value_error("has_grad: true for a param outside");
    group_params_.push_back(py::reinterpret_borrow<py::object>(group_params[i]));
    has_grad_.push_back(has_grad[i] ? 1 : 0);
    outside_.push_back(outside[i] ? 1 : 0);
    if (has_grad[i]) planned_.push_back(group_params_.back());
  }
  if (param_addresses.size() != planned_.size() || dtypes.size() != planned_.size() ||
      numels.size() != planned_.size() || is_complex.size() != planned_.size()) {
    throw py::value_error(
        "param_addresses, dtypes, numels and is_complex: expected one entry per param with a "
        "grad");
  }
  is_complex_.assign(is_complex.begin(), is_complex.end());
  for (const py::handle dtype : dtypes)
    dtypes_.push_back(py::reinterpret_borrow<py::object>(dtype));
  grad_addresses_.resize(planned_.size());
}

bool GradWatch::grad_matches(size_t k, PyObject* grad) {
  const TensorAttrs& attrs = tensor_attrs();
  if (attrs.get(grad, kDtype).ptr() != dtypes_[k].ptr()) return false;
  if (attrs.get(grad, kLayout).ptr() != attrs.strided()) return false;
  if (as_int(attrs.get(grad, kNumel), -1) != numels_[k]) return false;
  if (attrs.get(grad, kIsContiguous).ptr() != Py_True) return false;
  // A lazily negated view holds -grad in memory; the slow path resolves it.
  // Only a one-element one can be contiguous (the public way to one is
  // `z.conj().imag`, whose strides are 2; clone() and contiguous() resolve the
  // bit; more needs torch's private _neg_view), and autograd hands such a grad
  // over as it is, so only those pay for the getter (slower than is_contiguous).
  if (numels_[k] == 1 && attrs.get(grad, kIsNeg).ptr() != Py_False) return false;
  // A conjugated complex grad (the backward of `p.conj()`) holds conj(grad).
  if (is_complex_[k] && attrs.get(grad, kIsConj).ptr() != Py_False) return false;
  if (as_int(attrs.get(grad, kGetDevice), -2) != device_) return false;
  grad_addresses_[k] = address_of(grad);
  return true;
}

py::object GradWatch::collect(const py::list& group_params) {
  const size_t count = group_params.size();
  if (count != group_params_.size()) return py::none();
  PyObject* const* items = PySequence_Fast_ITEMS(group_params.ptr());
  for (size_t i = 0; i < count; ++i) {
    if (items[i] != group_params_[i].ptr()) return py::none();
  }
  py::list grads(planned_.size());
  size_t k = 0;
  try {
    for (size_t i = 0; i < count; ++i) {
      if (outside_[i]) continue;
      py::object grad = tensor_attrs().get(items[i], kGrad);
      if ((grad.ptr() != Py_None) != bool(has_grad_[i])) return py::none();
      if (grad.ptr() == Py_None) continue;
      // `p.data = other` moves a param without changing its identity; for a
      // complex one, `p.data = p.data.conj()` keeps the address and sets the
      // conjugate bit, which the kernels (reading memory) would not see.
      if (address_of(items[i]) != param_addresses_[k]) return py::none();
      if (is_complex_[k] && tensor_attrs().get(items[i], kIsConj).ptr() != Py_False) {
        return py::none();
      }
      if (!grad_matches(k, grad.ptr())) return py::none();
      PyList_SET_ITEM(grads.ptr(), static_cast<Py_ssize_t>(k), grad.release().ptr());
      ++k;
    }
  } catch (const py::error_already_set&) {
    // A getter refused (a sparse or otherwise unusual grad): not the planned
    // layout. The slow path re-reads it and raises a precise error.
    return py::none();
  }
  return std::move(grads);
}

void bind_grad_watch(py::module_& m) {
  py::class_<GradWatch>(m, "GradWatch",
                        "The grads of a cached plan's params, checked and collected each step.")
      .def(py::init<const py::list&, const std::vector<bool>&, const std::vector<bool>&,
                    const std::vector<uintptr_t>&, const py::list&, const std::vector<int64_t>&,
                    const std::vector<bool>&, int>(),
           py::arg("group_params"), py::arg("has_grad"), py::arg("outside"),
           py::arg("param_addresses"), py::arg("dtypes"), py::arg("numels"), py::arg("is_complex"),
           py::arg("device"))
      .def("collect", &GradWatch::collect, py::arg("group_params"),
           "This step's grads of the planned params (a list), or None when the group, a "
           "param's address or a grad's dtype, layout, size, contiguity or device changed (or a "
           "complex param or grad is lazily conjugated).")
      .def_property_readonly("grad_addresses", &GradWatch::grad_addresses,
                             "Addresses of the grads found by the last successful collect().");
}

}  // namespace fusedoptim::bindings
