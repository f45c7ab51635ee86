// The per-ISA CPU kernels. optim_kernels.cpp is compiled once per instruction
// set (see CMakeLists.txt); each build exports one OptimKernels table and
// isa_dispatch.cpp picks the best table the running CPU supports.
#pragma once

#include <cstdint>

#include "ops/adam.h"
#include "ops/sgd.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

// The storage types and rounding of a span's tensors beyond the param's
// (see Precision in optim_batch.h); the default is the plain case.
struct SpanPrecision {
  ops::DType grad_dtype;
  ops::DType state_dtype;
  void* param_copy = nullptr;  // master weights: where the rounded param goes
  ops::DType copy_dtype = ops::DType::kFloat32;
  ops::StoreRounding rounding;  // of the updated param, when bf16

  // Whether every tensor has the param's type and it rounds to nearest.
  bool plain(ops::DType param_dtype) const {
    return grad_dtype == param_dtype && state_dtype == param_dtype && param_copy == nullptr &&
           !rounding.stochastic;
  }
};

// One contiguous run of elements of each tensor an update touches.
struct AdamSpan {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  void* max_exp_avg_sq;  // only read with amsgrad
  int64_t numel;
  SpanPrecision precision;
};

struct SgdSpan {
  void* param;
  const void* grad;
  void* momentum_buffer;  // only read when momentum != 0
  int64_t numel;
  SpanPrecision precision;
};

// The per-step scalars in both math types, so one call serves every dtype.
struct AdamStepScalars {
  ops::AdamScalars<float> f32;
  ops::AdamScalars<double> f64;
};
struct SgdStepScalars {
  ops::SgdScalars<float> f32;
  ops::SgdScalars<double> f64;
};

// The compile-time options of a loop (see [note: options without branches]
// in ops/adam.h); every combination is instantiated for every dtype.
struct AdamVariant {
  bool amsgrad;
  bool coupled_decay;
};
struct SgdVariant {
  ops::MomentumMode mode;
  bool nesterov;
  bool coupled_decay;
};

struct OptimKernels {
  const char* isa;
  void (*adam)(ops::DType dtype, AdamVariant variant, const AdamSpan& span,
               const AdamStepScalars& s);
  void (*sgd)(ops::DType dtype, SgdVariant variant, const SgdSpan& span, const SgdStepScalars& s);
};

const OptimKernels& optim_kernels_baseline();
const OptimKernels& optim_kernels_avx2();
const OptimKernels& optim_kernels_avx512();

}  // namespace fusedoptim::cpu
