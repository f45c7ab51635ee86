// _C.entries_unchanged: the per-step check behind the optimizers' cached
// plans (python/fusedoptim/optim/_plan.py). Looking up a few string keys in
// hundreds of state dicts from Python costs more than the whole step of a
// small model; in C it is a pointer comparison per entry.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

// True when dicts[i][keys[k]] is expected[i * len(keys) + k] (by identity;
// an absent key matches None) for every i and k.
bool entries_unchanged(const py::list& dicts, const py::tuple& keys, const py::list& expected) {
  const size_t num_keys = keys.size();
  if (static_cast<size_t>(expected.size()) != dicts.size() * num_keys) return false;
  size_t flat = 0;
  for (const py::handle dict : dicts) {
    if (!PyDict_Check(dict.ptr())) return false;
    for (size_t k = 0; k < num_keys; ++k, ++flat) {
      PyObject* value = PyDict_GetItemWithError(dict.ptr(), keys[k].ptr());
      if (value == nullptr && PyErr_Occurred()) throw py::error_already_set();
      PyObject* want = PyList_GET_ITEM(expected.ptr(), static_cast<Py_ssize_t>(flat));
      if (value == nullptr ? want != Py_None : value != want) return false;
    }
  }
  return true;
}

}  // namespace

void bind_state_check(py::module_& m) {
  m.def("entries_unchanged", &entries_unchanged, py::arg("dicts"), py::arg("keys"),
        py::arg("expected"),
        "True when every dicts[i][keys[k]] is still the object expected[i * len(keys) + k].");
}

}  // namespace fusedoptim::bindings
