#include "cpu/isa_dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace fusedoptim::cpu {
namespace {

struct IsaEntry {
  const char* name;
  const OptimKernels& (*kernels)();
  const NormKernels& (*norms)();
  const QuantKernels& (*quant)();
  const ScalerKernels& (*scalers)();
  bool (*supported)();
};

bool always() { return true; }

#if defined(__x86_64__)
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}
#endif

// Lowest first; the last supported entry is the default.
const std::vector<IsaEntry>& table() {
  static const std::vector<IsaEntry> entries = {
      {"baseline", &optim_kernels_baseline, &norm_kernels_baseline, &quant_kernels_baseline,
       &scaler_kernels_baseline, &always},
#if defined(FUSEDOPTIM_HAVE_ISA_avx2)
      {"avx2", &optim_kernels_avx2, &norm_kernels_avx2, &quant_kernels_avx2, &scaler_kernels_avx2,
       &cpu_has_avx2},
#endif
#if defined(FUSEDOPTIM_HAVE_ISA_avx512)
      {"avx512", &optim_kernels_avx512, &norm_kernels_avx512, &quant_kernels_avx512,
       &scaler_kernels_avx512, &cpu_has_avx512},
#endif
  };
  return entries;
}

const IsaEntry& best_supported() {
  const IsaEntry* best = &table().front();
  for (const auto& entry : table()) {
    if (entry.supported()) best = &entry;
  }
  return *best;
}

const IsaEntry& find_usable(const std::string& name) {
  for (const auto& entry : table()) {
    if (name != entry.name) continue;
    if (!entry.supported()) {
      throw std::invalid_argument("ISA '" + name + "' is compiled in but this CPU cannot run it");
    }
    return entry;
  }
  std::string known;
  for (const auto& entry : table()) known += std::string(known.empty() ? "" : ", ") + entry.name;
  throw std::invalid_argument("unknown ISA '" + name + "'; compiled: " + known);
}

const IsaEntry& initial_choice() {
  const char* forced = std::getenv("FUSEDOPTIM_ISA");
  if (forced != nullptr && *forced != '\0') return find_usable(forced);
  return best_supported();
}

std::atomic<const IsaEntry*>& active() {
  static std::atomic<const IsaEntry*> entry{&initial_choice()};
  return entry;
}

}  // namespace

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
  for (const auto& entry : table()) names.emplace_back(entry.name);
  return names;
}

std::string detected_isa() { return best_supported().name; }
std::string active_isa() { return active().load()->name; }
void set_active_isa(const std::string& name) { active().store(&find_usable(name)); }
const OptimKernels& optim_kernels() { return active().load()->kernels(); }
const NormKernels& norm_kernels() { return active().load()->norms(); }
const QuantKernels& quant_kernels() { return active().load()->quant(); }
const ScalerKernels& scaler_kernels() { return active().load()->scalers(); }

}  // namespace fusedoptim::cpu
