// The CUDA entry points of the optimizers with 8-bit state and of the
// conversions between 8-bit and float state: the counterpart of
// cpu/quant_cpu.h. Plain C++: the stream is torch's cudaStream_t handle
// passed as an integer.
#pragma once

#include <cstdint>

#include "ops/adam.h"
#include "ops/quant8.h"
#include "ops/sgd.h"
#include "quant_batch.h"

namespace fusedoptim::cuda {

// Enqueue one step over every tensor of the batch on `stream` of `device` and
// return without waiting. All pointers must be memory of that device. Throws
// std::runtime_error (with CUDA's error string) when a launch fails.
void adam8bit_step(const Adam8bitBatch& batch, const ops::AdamHyper& hyper, int device,
                   uintptr_t stream);
void sgd8bit_step(const Sgd8bitBatch& batch, const ops::SgdHyper& hyper, int device,
                  uintptr_t stream);

// n float values <-> their 8-bit form (see ops::MomentKind), device memory.
void quantize(ops::MomentKind kind, const float* values, uint8_t* codes, float* absmax, int64_t n,
              int64_t block_size, int device, uintptr_t stream);
void dequantize(ops::MomentKind kind, const uint8_t* codes, const float* absmax, float* values,
                int64_t n, int64_t block_size, int device, uintptr_t stream);

}  // namespace fusedoptim::cuda
