// The CUDA entry points of the fused optimizer steps: the counterpart of
// cpu/optim_cpu.h. Plain C++: the stream is the cudaStream_t handle torch
// reports (torch.cuda.current_stream().cuda_stream) passed as an integer.
#pragma once

#include <cstdint>

#include "ops/adam.h"
#include "ops/sgd.h"
#include "optim_batch.h"

namespace fusedoptim::cuda {

// Enqueue one step over every tensor of the batch on `stream` of `device` and
// return without waiting. All pointers must be memory of that device. Throws
// std::runtime_error (with CUDA's error string) when a launch fails.
void adam_step(const AdamBatch& batch, const ops::AdamHyper& hyper, int device, uintptr_t stream);
void sgd_step(const SgdBatch& batch, const ops::SgdHyper& hyper, int device, uintptr_t stream);

}  // namespace fusedoptim::cuda
