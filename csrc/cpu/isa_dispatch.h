// Run-time choice of the CPU kernel build (see optim_kernels.h).
#pragma once

#include <string>
#include <vector>

#include "cpu/norm_kernels.h"
#include "cpu/optim_kernels.h"
#include "cpu/quant_kernels.h"
#include "cpu/scaler_kernels.h"

namespace fusedoptim::cpu {

// Builds compiled into this wheel, lowest first.
std::vector<std::string> compiled_isas();
// The best compiled build this CPU can run.
std::string detected_isa();
// The build in use: detected_isa() unless FUSEDOPTIM_ISA (environment, read
// once at import) or set_active_isa() chose a lower one.
std::string active_isa();
// Throws std::invalid_argument for a build that is not compiled in or that
// this CPU cannot run.
void set_active_isa(const std::string& name);

const OptimKernels& optim_kernels();
const NormKernels& norm_kernels();
const QuantKernels& quant_kernels();
const ScalerKernels& scaler_kernels();

}  // namespace fusedoptim::cpu
