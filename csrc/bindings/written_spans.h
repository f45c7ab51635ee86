// The memory a fused call writes, checked for overlap before the call exists.
//
// One call writes all of its tensors at once, from several threads, so no two
// of them may share an element: the optimizers split params that share memory
// into successive calls (python/fusedoptim/_overlap.py), and anything else
// that reaches a call this way is refused here, at the cost of one sort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace fusedoptim::bindings {

struct Span {
  uintptr_t begin, end;  // [begin, end); empty when begin == end
};

// Positions (the smaller first) of two spans that share at least one byte.
std::optional<std::pair<size_t, size_t>> find_overlap(const std::vector<Span>& spans);

// The spans of one call's written tensors, labelled for the error message.
class WrittenSpans {
 public:
  // Adds `name`[0..n) with byte sizes numels[i] * element_size.
  void add(const char* name, const std::vector<void*>& data, const std::vector<int64_t>& numels,
           int element_size);
  // Throws ValueError "b[j] shares memory with a[i]: ..." for an overlapping pair.
  void check_disjoint() const;

 private:
  std::vector<Span> spans_;
  std::vector<std::pair<const char*, size_t>> labels_;
};

}  // namespace fusedoptim::bindings
