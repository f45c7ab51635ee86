// Each bind_*.cpp adds one topic's functions to the _C module.
#pragma once

#include <pybind11/pybind11.h>

namespace fusedoptim::bindings {

void bind_optim(pybind11::module_& m);
void bind_info(pybind11::module_& m);
void bind_convert(pybind11::module_& m);
void bind_metrics(pybind11::module_& m);
void bind_state_check(pybind11::module_& m);
void bind_grad_watch(pybind11::module_& m);
void bind_norms(pybind11::module_& m);
void bind_cuda_testing(pybind11::module_& m);
void bind_bench(pybind11::module_& m);
void bind_quant(pybind11::module_& m);
void bind_preprocessing(pybind11::module_& m);

}  // namespace fusedoptim::bindings
