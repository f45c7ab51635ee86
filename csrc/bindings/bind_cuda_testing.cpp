// _C._cuda_chunk_plan: the CUDA launcher's chunk planner and table packing,
// exposed in every build (CPU-only ones too) so tests/test_cuda_chunk_plan.py
// checks them on machines without a GPU. Not a public API.
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "cuda/chunk_plan.h"

namespace py = pybind11;

namespace fusedoptim::bindings {
namespace {

// Fake addresses that encode (stream, tensor), so the test can check that the
// packer put every stream of every tensor in the right slot.
void* fake_address(int stream, int32_t tensor) {
  return reinterpret_cast<void*>((uintptr_t(tensor) + 1) * 16 + uintptr_t(stream));
}

// A key per tensor that differs in every byte from its neighbours', so a key
// packed into the wrong slot cannot read back right.
uint32_t fake_key(size_t tensor) { return uint32_t(tensor + 1) * 0x9E3779B9u; }

// Plans, packs each launch into the real table type, and reads it back the way
// the kernel does (cuda::block_extent).
template <int kDepth, int kParamBytes, bool kKeys>
py::dict plan_and_replay(const std::vector<int64_t>& numels, const std::vector<int32_t>& variants) {
  using Table = cuda::LaunchTable<kDepth, kParamBytes, kKeys>;
  const cuda::PlanLimits limits = cuda::plan_limits<kDepth, kParamBytes, kKeys>();
  const auto plan = cuda::plan_launches(numels, variants, limits);
  std::vector<uint32_t> keys(numels.size());
  for (size_t t = 0; t < keys.size(); ++t) keys[t] = fake_key(t);
  auto table = std::make_unique<Table>();
  py::list launches;
  for (const auto& launch : plan) {
    pack_launch(launch, numels, fake_address, table.get(), keys);
    py::list slots;  // per slot: the decoded tensor index of each stream
    py::list keyed;  // per slot of a keyed table: the tensor its key belongs to
    for (size_t slot = 0; slot < launch.tensors.size(); ++slot) {
      py::list streams;
      for (int d = 0; d < kDepth; ++d) {
        const auto raw = reinterpret_cast<uintptr_t>(table->addresses[d][slot]);
        streams.append(raw % 16 == uintptr_t(d) ? int64_t(raw / 16) - 1 : -1);
      }
      slots.append(streams);
      if (kKeys) {
        const uint32_t key = table->keys[slot];
        // The key's tensor, or -1 when it is no tensor's key.
        const int32_t tensor = launch.tensors[slot];
        keyed.append(key == fake_key(size_t(tensor)) ? int64_t(tensor) : int64_t(-1));
      }
    }
    py::list blocks;  // per block: (tensor, begin, count)
    for (int b = 0; b < int(launch.blocks.size()); ++b) {
      const cuda::BlockExtent e = cuda::block_extent(*table, b);
      blocks.append(py::make_tuple(launch.tensors[e.slot], e.begin, e.count));
    }
    py::dict entry;
    entry["variant"] = launch.variant;
    entry["slots"] = slots;
    entry["blocks"] = blocks;
    if (kKeys) entry["keys"] = keyed;
    launches.append(entry);
  }
  py::dict out;
  out["chunk_elements"] = cuda::kChunkElements;
  out["max_tensors"] = limits.max_tensors;
  out["max_blocks"] = limits.max_blocks;
  out["table_bytes"] = sizeof(Table);
  out["launches"] = launches;
  return out;
}

// Depths 2..9 (SGD 2-3, Adam 4-5, 8-bit state and param copies up to 9).
template <int kParamBytes, bool kKeys, int kDepth = 2>
py::dict plan_for_depth(int depth, const std::vector<int64_t>& numels,
                        const std::vector<int32_t>& variants) {
  if (depth == kDepth) return plan_and_replay<kDepth, kParamBytes, kKeys>(numels, variants);
  if constexpr (kDepth < 9) {
    return plan_for_depth<kParamBytes, kKeys, kDepth + 1>(depth, numels, variants);
  }
  throw py::value_error("depth must be 2..9 (pointer streams per tensor), got " +
                        std::to_string(depth));
}

template <int kParamBytes>
py::dict plan_for_keys(bool keyed, int depth, const std::vector<int64_t>& numels,
                       const std::vector<int32_t>& variants) {
  return keyed ? plan_for_depth<kParamBytes, true>(depth, numels, variants)
               : plan_for_depth<kParamBytes, false>(depth, numels, variants);
}

py::dict cuda_chunk_plan(const std::vector<int64_t>& numels, std::vector<int32_t> variants,
                         int depth, int param_bytes, bool keyed) {
  if (variants.empty()) variants.assign(numels.size(), 0);
  try {
    if (param_bytes == cuda::kLargeParamBytes) {
      return plan_for_keys<cuda::kLargeParamBytes>(keyed, depth, numels, variants);
    }
    if (param_bytes == cuda::kSmallParamBytes) {
      return plan_for_keys<cuda::kSmallParamBytes>(keyed, depth, numels, variants);
    }
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  throw py::value_error("param_bytes must be 4096 or 32764, got " + std::to_string(param_bytes));
}

}  // namespace

void bind_cuda_testing(py::module_& m) {
  m.def("_cuda_chunk_plan", &cuda_chunk_plan, py::arg("numels"),
        py::arg("variants") = std::vector<int32_t>{}, py::arg("depth") = 4,
        py::arg("param_bytes") = cuda::kLargeParamBytes, py::arg("keyed") = false,
        "Test hook: the CUDA launch tables planned for these tensor sizes, read back as the "
        "kernels read them.");
}

}  // namespace fusedoptim::bindings
