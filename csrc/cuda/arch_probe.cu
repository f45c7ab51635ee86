// An empty kernel built for the same architectures as the optimizer kernels:
// asking the runtime about it tells, before any step writes a byte, whether
// this build has code (a cubin, or PTX it can JIT) for a given GPU.
#include <cuda_runtime.h>

namespace fusedoptim::cuda {
namespace {

__global__ void probe_kernel() {}

}  // namespace

int kernel_image_status() {
  cudaFuncAttributes attributes;
  return static_cast<int>(cudaFuncGetAttributes(&attributes, probe_kernel));
}

}  // namespace fusedoptim::cuda
