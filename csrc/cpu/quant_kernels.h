// The per-ISA CPU kernels of the optimizers with 8-bit state (see [note:
// 8-bit state] in ops/quant8.h) and of the conversions between 8-bit and
// float state. quant_kernels.cpp is compiled once per instruction set, like
// optim_kernels.cpp; isa_dispatch.cpp picks the table of the active build.
#pragma once

#include <cstdint>

#include "cpu/optim_kernels.h"
#include "ops/adam.h"
#include "ops/quant8.h"
#include "ops/sgd.h"
#include "ops/storage.h"

namespace fusedoptim::cpu {

// One moment in 8-bit form: a code per element and an absmax per block.
struct QuantSpan {
  uint8_t* codes;
  float* absmax;  // absmax[0] is the block holding codes[0]
};

// Elements [0, numel) of one tensor, starting on a block boundary; blocks of
// block_size elements, the last one possibly shorter.
struct Adam8bitSpan {
  void* param;
  const void* grad;
  QuantSpan exp_avg;
  QuantSpan exp_avg_sq;      // the codes of sqrt(exp_avg_sq)
  QuantSpan max_exp_avg_sq;  // amsgrad only: the codes of sqrt(max_exp_avg_sq)
  int64_t numel;
  int64_t block_size;
  SpanPrecision precision;  // state_dtype unused
};

struct Sgd8bitSpan {
  void* param;
  const void* grad;
  QuantSpan momentum_buffer;  // unused when momentum == 0
  int64_t numel;
  int64_t block_size;
  SpanPrecision precision;  // state_dtype unused
};

using ops::MomentKind;

struct QuantKernels {
  const char* isa;
  // dtype: the param's (and grad's) storage type: fp32, fp16 or bf16.
  void (*adam8bit)(ops::DType dtype, AdamVariant variant, const Adam8bitSpan& span,
                   const ops::AdamScalars<float>& s);
  void (*sgd8bit)(ops::DType dtype, SgdVariant variant, const Sgd8bitSpan& span,
                  const ops::SgdScalars<float>& s);
  // float values <-> 8-bit form, n elements from a block boundary.
  void (*quantize)(MomentKind kind, const float* values, QuantSpan out, int64_t n,
                   int64_t block_size);
  void (*dequantize)(MomentKind kind, QuantSpan in, float* values, int64_t n, int64_t block_size);
};

const QuantKernels& quant_kernels_baseline();
const QuantKernels& quant_kernels_avx2();
const QuantKernels& quant_kernels_avx512();

// The largest block_size the kernels take: their scratch holds one block.
constexpr int64_t kMaxQuantBlock = 4096;

}  // namespace fusedoptim::cpu
