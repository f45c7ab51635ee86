#include "cpu/confusion_matrix.h"

#include <algorithm>
#include <vector>

#include "cpu/thread_pool.h"

namespace fusedoptim::cpu {
namespace {

// [note: private histograms] Each slice of the input counts into its own
// C x C table, and the tables are summed at the end. Threads never share a
// cache line while counting, and a bad label found in any slice leaves the
// caller's counts untouched (the tables are simply dropped). The merge costs
// slices * C * C adds, so a slice must hold at least C * C labels (and at
// least kMinSliceLabels) to pay for its table; the tables together stay under
// kMaxScratchBytes. Inputs too small or class counts too large for that are
// validated in one pass and counted straight into the caller's table.
constexpr int64_t kMinSliceLabels = int64_t(1) << 15;
constexpr int64_t kMaxScratchBytes = int64_t(64) << 20;
constexpr int64_t kMergeBlock = 4096;

struct UnitWeight {
  template <typename Count>
  Count at(int64_t) const {
    return Count(1);
  }
};
struct ArrayWeight {
  const double* w;
  template <typename Count>
  Count at(int64_t i) const {
    return Count(w[i]);
  }
};

// Counts pairs [begin, end) into table; returns the first bad index or -1.
// The unsigned compare rejects negative labels and labels >= C at once.
template <typename Label, typename Count, typename Weight>
int64_t count_range(const Label* t, const Label* p, Weight weight, int64_t begin, int64_t end,
                    int64_t num_classes, Count* table) {
  const uint64_t limit = static_cast<uint64_t>(num_classes);
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t ti = static_cast<uint64_t>(static_cast<int64_t>(t[i]));
    const uint64_t pi = static_cast<uint64_t>(static_cast<int64_t>(p[i]));
    if ((ti >= limit) | (pi >= limit)) return i;
    table[ti * limit + pi] += weight.template at<Count>(i);
  }
  return -1;
}

template <typename Label>
int64_t first_bad(const Label* t, const Label* p, int64_t size, int64_t num_classes) {
  const uint64_t limit = static_cast<uint64_t>(num_classes);
  for (int64_t i = 0; i < size; ++i) {
    const uint64_t ti = static_cast<uint64_t>(static_cast<int64_t>(t[i]));
    const uint64_t pi = static_cast<uint64_t>(static_cast<int64_t>(p[i]));
    if ((ti >= limit) | (pi >= limit)) return i;
  }
  return -1;
}

int64_t slices_for(int64_t size, int64_t cells, int64_t cell_bytes, int num_threads) {
  if (cells > kMaxScratchBytes / cell_bytes) return 1;
  const int64_t by_size = size / std::max(cells, kMinSliceLabels);
  const int64_t by_memory = kMaxScratchBytes / (cells * cell_bytes);
  return std::max<int64_t>(1, std::min<int64_t>({num_threads, by_size, by_memory}));
}

template <typename Label, typename Count, typename Weight>
int64_t add_pairs(const LabelPairs& pairs, Weight weight, Count* counts, int num_threads) {
  const auto* t = static_cast<const Label*>(pairs.y_true);
  const auto* p = static_cast<const Label*>(pairs.y_pred);
  const int64_t n = pairs.size;
  const int64_t num_classes = pairs.num_classes;
  const int64_t cells = num_classes * num_classes;
  const int64_t slices = slices_for(n, cells, sizeof(Count), num_threads);

  if (slices == 1) {
    const int64_t bad = first_bad(t, p, n, num_classes);
    if (bad >= 0) return bad;
    count_range(t, p, weight, 0, n, num_classes, counts);
    return -1;
  }

  std::vector<Count> tables(static_cast<size_t>(slices * cells), Count(0));
  std::vector<int64_t> bad(static_cast<size_t>(slices), -1);
  parallel_for(slices, num_threads, [&](int64_t s) {
    const int64_t begin = n * s / slices;
    const int64_t end = n * (s + 1) / slices;
    bad[s] = count_range(t, p, weight, begin, end, num_classes, tables.data() + s * cells);
  });
  // Slices are in input order, so the first slice that failed holds the first bad pair.
  for (int64_t b : bad) {
    if (b >= 0) return b;
  }

  const int64_t blocks = (cells + kMergeBlock - 1) / kMergeBlock;
  parallel_for(blocks, num_threads, [&](int64_t block) {
    const int64_t begin = block * kMergeBlock;
    const int64_t end = std::min(cells, begin + kMergeBlock);
    for (int64_t s = 0; s < slices; ++s) {
      const Count* table = tables.data() + s * cells;
      for (int64_t c = begin; c < end; ++c) counts[c] += table[c];
    }
  });
  return -1;
}

template <typename Count>
int64_t dispatch(const LabelPairs& pairs, Count* counts, int num_threads) {
  const bool weighted = pairs.weights != nullptr;
  if (pairs.dtype == LabelDType::kInt32) {
    return weighted ? add_pairs<int32_t>(pairs, ArrayWeight{pairs.weights}, counts, num_threads)
                    : add_pairs<int32_t>(pairs, UnitWeight{}, counts, num_threads);
  }
  return weighted ? add_pairs<int64_t>(pairs, ArrayWeight{pairs.weights}, counts, num_threads)
                  : add_pairs<int64_t>(pairs, UnitWeight{}, counts, num_threads);
}

}  // namespace

int64_t confusion_matrix_add(const LabelPairs& pairs, int64_t* counts, int num_threads) {
  return dispatch(pairs, counts, num_threads);
}

int64_t confusion_matrix_add(const LabelPairs& pairs, double* counts, int num_threads) {
  return dispatch(pairs, counts, num_threads);
}

}  // namespace fusedoptim::cpu
