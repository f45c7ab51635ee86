// _C.build_info() and the ISA controls behind fusedoptim.info().
#include <pybind11/stl.h>

#include <stdexcept>

#include "bindings/bindings.h"
#include "cpu/isa_dispatch.h"
#include "cpu/thread_pool.h"

namespace py = pybind11;

namespace fusedoptim::bindings {

void bind_info(py::module_& m) {
  m.def("build_info", [] {
    py::dict info;
    info["version"] = FUSEDOPTIM_VERSION;
    info["compiler"] = __VERSION__;
    info["isas_compiled"] = cpu::compiled_isas();
    info["isa_detected"] = cpu::detected_isa();
    info["isa_active"] = cpu::active_isa();
    info["hardware_threads"] = cpu::hardware_threads();
#if defined(FUSEDOPTIM_WITH_CUDA)
    info["cuda_compiled"] = true;
#else
    info["cuda_compiled"] = false;
#endif
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
