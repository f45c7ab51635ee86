#include "cuda/runtime.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>

#ifndef FUSEDOPTIM_CUDA_ARCHS
#error "FUSEDOPTIM_CUDA_ARCHS must list the compiled CUDA architectures (set by CMakeLists.txt)"
#endif

namespace fusedoptim::cuda {

int kernel_image_status();  // arch_probe.cu: a cudaError_t for the current device

namespace {

std::string version_string(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// The Linux driver release that first supports a CUDA version (from the CUDA
// release notes' compatibility table), for error messages.
const char* linux_driver_for(int cuda_version) {
  if (cuda_version >= 13000) return "580";
  if (cuda_version >= 12010) return "530.30.02";
  if (cuda_version >= 12000) return "525.60.13";
  return "450.80.02";
}

std::string driver_problem() {
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
  cudaGetLastError();
  const int minimum = minimum_driver_version();
  if (driver >= minimum) return {};
  const std::string needs = "fusedoptim was built with CUDA " + version_string(CUDART_VERSION) +
                            " and needs an NVIDIA driver that supports CUDA " +
                            version_string(minimum) +
                            " or newer (Linux driver >= " + linux_driver_for(minimum) + ")";
  if (driver == 0) return "no NVIDIA driver was found: " + needs + ".";
  return needs + ", but this machine's driver supports CUDA " + version_string(driver) +
         ". Update the NVIDIA driver, or rebuild fusedoptim with an older CUDA toolkit.";
}

}  // namespace

RuntimeInfo runtime_info() {
  RuntimeInfo info{CUDART_VERSION, 0, 0};
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  // Without a driver (or with one too old for this runtime) the count is an
  // error, not a crash; the error is cleared so it never surfaces later.
  if (info.driver_version == 0 || cudaGetDeviceCount(&info.device_count) != cudaSuccess) {
    info.device_count = 0;
  }
  cudaGetLastError();
  return info;
}

std::vector<std::string> compiled_architectures() {
  std::vector<std::string> out;
  const std::string all = FUSEDOPTIM_CUDA_ARCHS;
  size_t start = 0;
  while (start <= all.size()) {
    const size_t end = std::min(all.find(' ', start), all.size());
    if (end > start) out.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// [note: minimum driver] CUDA's minor version compatibility lets a driver of
// the same major version run code built with a later minor toolkit (a CUDA
// 13.0 driver runs a 13.2 build), provided no PTX newer than the driver has
// to be JIT-compiled; the default architecture list ships a cubin for every
// GPU family the toolkit knows, so only GPUs newer than the toolkit would need
// that. Hence the floor is the first release of the build's major version,
// raised to 12.1 when the launch tables use the 32 KiB argument space (see
// [note: kernel parameter space] in launch_table.h), which drivers before
// 12.1 reject.
int minimum_driver_version() {
  const int major_floor = CUDART_VERSION / 1000 * 1000;
  return CUDART_VERSION >= 12010 ? std::max(major_floor, 12010) : major_floor;
}

void ensure_device_usable(int device) {
  static const std::string problem = driver_problem();
  if (!problem.empty()) throw std::runtime_error(problem);
  int count = 0;
  throw_on_error(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device < 0 || device >= count) {
    throw std::runtime_error("fusedoptim: CUDA device " + std::to_string(device) +
                             " does not exist (" + std::to_string(count) + " visible)");
  }
  // Has this build code for the device? Asked once per device (bits of a
  // mask; devices past 64 are asked every time).
  static std::atomic<uint64_t> verified{0};
  const uint64_t bit = device < 64 ? uint64_t(1) << device : 0;
  if ((verified.load(std::memory_order_acquire) & bit) != 0) return;
  const DeviceGuard guard(device);
  const auto status = static_cast<cudaError_t>(kernel_image_status());
  cudaGetLastError();
  if (status != cudaSuccess) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    const std::string cc = std::to_string(major) + std::to_string(minor);
    throw std::runtime_error("fusedoptim has no CUDA code for device " + std::to_string(device) +
                             " (compute capability " + std::to_string(major) + "." +
                             std::to_string(minor) + "): it was built for " +
                             FUSEDOPTIM_CUDA_ARCHS + " (" + cudaGetErrorName(status) +
                             "). Rebuild with CMAKE_ARGS=\"-DFUSEDOPTIM_CUDA_ARCHITECTURES=" + cc +
                             "\" or with the default architecture list.");
  }
  verified.fetch_or(bit, std::memory_order_release);
}

void throw_on_error(int error, const char* what) {
  const auto code = static_cast<cudaError_t>(error);
  if (code == cudaSuccess) return;
  throw std::runtime_error(std::string("fusedoptim: CUDA error in ") + what + ": " +
                           cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")");
}

void check_launch(const char* kernel) { throw_on_error(cudaGetLastError(), kernel); }

DeviceGuard::DeviceGuard(int device) : device_(device) {
  throw_on_error(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device_) throw_on_error(cudaSetDevice(device_), "cudaSetDevice");
}

DeviceGuard::~DeviceGuard() {
  if (previous_ != device_) cudaSetDevice(previous_);
}

}  // namespace fusedoptim::cuda
