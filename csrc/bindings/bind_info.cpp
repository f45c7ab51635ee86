// _C.build_info() and the ISA controls behind fusedoptim.info().
#include <pybind11/stl.h>

#include <stdexcept>

#include "bindings/bindings.h"
#include "cpu/isa_dispatch.h"
#include "cpu/thread_pool.h"
#if defined(FUSEDOPTIM_WITH_CUDA)
#include "cuda/runtime.h"
#endif

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

// "13.0" from 13000; None for 0 (no driver).
py::object cuda_version(int version) {
  if (version <= 0) return py::none();
  return py::str(std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10));
}

// The CUDA entries of build_info(). Never fails and never prints, with or
// without a GPU or a driver.
void add_cuda_info(py::dict& info) {
#if defined(FUSEDOPTIM_WITH_CUDA)
  const cuda::RuntimeInfo runtime = cuda::runtime_info();
  info["cuda_compiled"] = true;
  info["cuda_architectures"] = cuda::compiled_architectures();
  info["cuda_runtime_version"] = cuda_version(runtime.runtime_version);
  info["cuda_minimum_driver_version"] = cuda_version(cuda::minimum_driver_version());
  info["cuda_driver_version"] = cuda_version(runtime.driver_version);
  info["cuda_device_count"] = runtime.device_count;
#else
  info["cuda_compiled"] = false;
  info["cuda_architectures"] = py::list();
  info["cuda_runtime_version"] = py::none();
  info["cuda_minimum_driver_version"] = py::none();
  info["cuda_driver_version"] = py::none();
  info["cuda_device_count"] = 0;
#endif
}

}  // namespace

void bind_info(py::module_& m) {
  m.def("build_info", [] {
    py::dict info;
    info["version"] = FUSEDOPTIM_VERSION;
    info["compiler"] = __VERSION__;
    info["isas_compiled"] = cpu::compiled_isas();
    info["isa_detected"] = cpu::detected_isa();
    info["isa_active"] = cpu::active_isa();
    info["hardware_threads"] = cpu::hardware_threads();
    info["parallel_backend"] = cpu::parallel_backend();
    add_cuda_info(info);
    return info;
  });
  m.def(
      "set_isa",
      [](const std::string& name) {
        try {
          cpu::set_active_isa(name);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("name"), "Use a lower CPU kernel build (for tests and benchmarks).");
}

}  // namespace fusedoptim::bindings
