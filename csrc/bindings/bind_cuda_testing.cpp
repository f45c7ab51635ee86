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
  return reinterpret_cast<void*>((uintptr_t(tensor) + 1) * 8 + uintptr_t(stream));
}

// Plans, packs each launch into the real table type, and reads it back the way
// the kernel does (cuda::block_extent).
template <int kDepth, int kParamBytes>
py::dict plan_and_replay(const std::vector<int64_t>& numels, const std::vector<int32_t>& variants) {
  using Table = cuda::LaunchTable<kDepth, kParamBytes>;
  const cuda::PlanLimits limits = cuda::plan_limits<kDepth, kParamBytes>();
  const auto plan = cuda::plan_launches(numels, variants, limits);
  auto table = std::make_unique<Table>();
  py::list launches;
  for (const auto& launch : plan) {
    pack_launch(launch, numels, fake_address, table.get());
    py::list slots;  // per slot: the decoded tensor index of each stream
    for (size_t slot = 0; slot < launch.tensors.size(); ++slot) {
      py::list streams;
      for (int d = 0; d < kDepth; ++d) {
        const auto raw = reinterpret_cast<uintptr_t>(table->addresses[d][slot]);
        streams.append(raw % 8 == uintptr_t(d) ? int64_t(raw / 8) - 1 : -1);
      }
      slots.append(streams);
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

template <int kParamBytes>
py::dict plan_for_depth(int depth, const std::vector<int64_t>& numels,
                        const std::vector<int32_t>& variants) {
  switch (depth) {
    case 2:
      return plan_and_replay<2, kParamBytes>(numels, variants);
    case 3:
      return plan_and_replay<3, kParamBytes>(numels, variants);
    case 4:
      return plan_and_replay<4, kParamBytes>(numels, variants);
    case 5:
      return plan_and_replay<5, kParamBytes>(numels, variants);
  }
  throw py::value_error("depth must be 2..5 (pointer streams per tensor), got " +
                        std::to_string(depth));
}

py::dict cuda_chunk_plan(const std::vector<int64_t>& numels, std::vector<int32_t> variants,
                         int depth, int param_bytes) {
  if (variants.empty()) variants.assign(numels.size(), 0);
  try {
    if (param_bytes == cuda::kLargeParamBytes) {
      return plan_for_depth<cuda::kLargeParamBytes>(depth, numels, variants);
    }
    if (param_bytes == cuda::kSmallParamBytes) {
      return plan_for_depth<cuda::kSmallParamBytes>(depth, numels, variants);
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
        py::arg("param_bytes") = cuda::kLargeParamBytes,
        "Test hook: the CUDA launch tables planned for these tensor sizes, read back as the "
        "kernels read them.");
}

}  // namespace fusedoptim::bindings
