// The _C extension module. No torch headers anywhere in csrc/: Python passes
// raw addresses, element counts and dtype codes (see fusedoptim/_backend.py),
// and the per-step plan check reads tensors only through their Python
// attributes (bindings/grad_watch.h), so one wheel serves every torch 2.x and
// numpy arrays work as well.
#include "bindings/bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusedoptim native kernels (use fusedoptim._backend, not this module)";
  // A plain attribute: reading it must not initialize CUDA (build_info() may).
  m.attr("__version__") = FUSEDOPTIM_VERSION;
  fusedoptim::bindings::bind_optim(m);
  fusedoptim::bindings::bind_info(m);
  fusedoptim::bindings::bind_convert(m);
  fusedoptim::bindings::bind_metrics(m);
  fusedoptim::bindings::bind_state_check(m);
  fusedoptim::bindings::bind_grad_watch(m);
  fusedoptim::bindings::bind_norms(m);
  fusedoptim::bindings::bind_cuda_testing(m);
  fusedoptim::bindings::bind_bench(m);
  fusedoptim::bindings::bind_quant(m);
  fusedoptim::bindings::bind_preprocessing(m);
}
