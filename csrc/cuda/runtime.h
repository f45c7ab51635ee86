// The CUDA runtime around the kernels: what was built and found, the driver
// check at first use, the device guard, and CUDA errors as exceptions.
// Plain C++ (no CUDA types), so the bindings include it without CUDA headers.
// Built only with FUSEDOPTIM_WITH_CUDA.
#pragma once

#include <string>
#include <vector>

namespace fusedoptim::cuda {

struct RuntimeInfo {
  int runtime_version;  // CUDART_VERSION the extension was built with, e.g. 13000
  int driver_version;   // what the driver supports, e.g. 13000; 0 without a driver
  int device_count;     // 0 without a driver or a device
};

// Never throws and never prints: fusedoptim.info() calls it on machines with
// no GPU and no driver. It does initialize the driver when there is one.
RuntimeInfo runtime_info();

// The CUDA architectures compiled in, as CMake's CUDA_ARCHITECTURES spells
// them ("80-real", "120-virtual", ...).
std::vector<std::string> compiled_architectures();

// The oldest driver (as a CUDA version, e.g. 13000) this build runs on.
int minimum_driver_version();

// Throws std::runtime_error naming the minimum driver when the driver is
// missing or too old (checked once, at the first CUDA step), when `device` is
// not a visible device, or when this build has no code for it (a build for
// other architectures). The bindings call it before writing anything.
void ensure_device_usable(int device);

// Throws std::runtime_error with CUDA's name and description of `error`
// (a cudaError_t) unless it is cudaSuccess.
void throw_on_error(int error, const char* what);

// Throws if the launch just made on this thread failed (bad configuration,
// no kernel image for this GPU, an earlier kernel's sticky error).
void check_launch(const char* kernel);

// Makes `device` current for the lifetime of the guard and restores the
// caller's device afterwards: torch's own current device is per thread and
// shared with us through the driver's current context.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  int device_ = -1;
};

}  // namespace fusedoptim::cuda
