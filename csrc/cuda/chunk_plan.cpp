#include "cuda/chunk_plan.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace fusedoptim::cuda {

std::vector<PlannedLaunch> plan_launches(const std::vector<int64_t>& numels,
                                         const std::vector<int32_t>& variants, PlanLimits limits) {
  if (variants.size() != numels.size()) {
    throw std::invalid_argument("plan_launches: one variant per tensor expected");
  }
  if (limits.max_tensors < 1 || limits.max_blocks < 1) {
    throw std::invalid_argument("plan_launches: limits must allow one tensor and one block");
  }
  std::vector<int32_t> order;  // distinct variants, in order of first appearance
  for (int32_t v : variants) {
    if (std::find(order.begin(), order.end(), v) == order.end()) order.push_back(v);
  }

  std::vector<PlannedLaunch> launches;
  PlannedLaunch current;
  auto flush = [&] {
    if (!current.blocks.empty()) launches.push_back(std::move(current));
    current = PlannedLaunch{};
  };
  for (int32_t variant : order) {
    flush();  // one variant per launch
    current.variant = variant;
    for (size_t i = 0; i < numels.size(); ++i) {
      if (variants[i] != variant || numels[i] <= 0) continue;
      const int64_t chunks = (numels[i] + kChunkElements - 1) / kChunkElements;
      if (chunks > std::numeric_limits<int32_t>::max()) {
        throw std::length_error("tensor " + std::to_string(i) + " has too many elements (" +
                                std::to_string(numels[i]) + ") for the CUDA chunk table");
      }
      for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        // A tensor takes a slot at its first chunk in this launch: at its start,
        // or again after the previous launch filled up mid-tensor.
        if (current.tensors.empty() || current.tensors.back() != int32_t(i)) {
          if (int(current.tensors.size()) == limits.max_tensors) {
            flush();
            current.variant = variant;
          }
          current.tensors.push_back(int32_t(i));
        }
        current.blocks.push_back({int32_t(current.tensors.size() - 1), int32_t(chunk)});
        if (int(current.blocks.size()) == limits.max_blocks) {
          flush();
          current.variant = variant;
        }
      }
    }
  }
  flush();
  return launches;
}

}  // namespace fusedoptim::cuda
