#include "bindings/written_spans.h"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>

namespace py = pybind11;

namespace fusedoptim::bindings {

std::optional<std::pair<size_t, size_t>> find_overlap(const std::vector<Span>& spans) {
  std::vector<size_t> order;
  for (size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].end > spans[i].begin) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return spans[a].begin < spans[b].begin; });
  // Sorted by start, a span overlaps some earlier one exactly when it starts
  // before the furthest end seen so far.
  size_t furthest = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (k > 0 && spans[i].begin < spans[furthest].end) {
      return std::make_pair(std::min(i, furthest), std::max(i, furthest));
    }
    if (k == 0 || spans[i].end > spans[furthest].end) furthest = i;
  }
  return std::nullopt;
}

void WrittenSpans::add(const char* name, const std::vector<void*>& data,
                       const std::vector<int64_t>& numels, int element_size) {
  for (size_t i = 0; i < data.size(); ++i) {
    const auto begin = reinterpret_cast<uintptr_t>(data[i]);
    spans_.push_back({begin, begin + static_cast<uintptr_t>(numels[i]) * element_size});
    labels_.emplace_back(name, i);
  }
}

void WrittenSpans::check_disjoint() const {
  const auto pair = find_overlap(spans_);
  if (!pair) return;
  auto label = [&](size_t k) {
    return std::string(labels_[k].first) + "[" + std::to_string(labels_[k].second) + "]";
  };
  throw py::value_error(label(pair->second) + " shares memory with " + label(pair->first) +
                        ": one fused call writes both at once; update them in separate calls");
}

}  // namespace fusedoptim::bindings
