// The per-ISA CPU kernels of the norms and of gradient clipping's scale pass.
// norm_kernels.cpp is compiled once per instruction set, like
// optim_kernels.cpp; isa_dispatch.cpp picks the table of the active build.
#pragma once

#include <cstdint>

#include "ops/norms.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

struct NormKernels {
  const char* isa;
  // The sums (or max) of n elements at data, in double; p is read by kLp only.
  ops::NormSums (*reduce)(ops::DType dtype, ops::NormMode mode, double p, const void* data,
                          int64_t n);
  // data[i] <- data[i] * coef (see ops::scaled for the rounding).
  void (*scale)(ops::DType dtype, void* data, int64_t n, double coef);
};

const NormKernels& norm_kernels_baseline();
const NormKernels& norm_kernels_avx2();
const NormKernels& norm_kernels_avx512();

}  // namespace fusedoptim::cpu
