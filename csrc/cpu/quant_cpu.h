// The CPU multi-tensor driver of the optimizers with 8-bit state and of the
// conversions between 8-bit and float state: one parallel region per call
// over chunks drawn from every tensor (cpu/chunk_list.h); chunks start on
// block boundaries, so a block is never split between threads.
#pragma once

#include <cstdint>

#include "cpu/quant_kernels.h"
#include "ops/adam.h"
#include "ops/sgd.h"
#include "quant_batch.h"

namespace fusedoptim::cpu {

void adam8bit_step(const Adam8bitBatch& batch, const ops::AdamHyper& hyper, int num_threads);
void sgd8bit_step(const Sgd8bitBatch& batch, const ops::SgdHyper& hyper, int num_threads);

// n float values <-> their 8-bit form (see MomentKind).
void quantize(MomentKind kind, const float* values, uint8_t* codes, float* absmax, int64_t n,
              int64_t block_size, int num_threads);
void dequantize(MomentKind kind, const uint8_t* codes, const float* absmax, float* values,
                int64_t n, int64_t block_size, int num_threads);

}  // namespace fusedoptim::cpu
