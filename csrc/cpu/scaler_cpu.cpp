#include "cpu/scaler_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/chunk_list.h"
#include "cpu/isa_dispatch.h"
#include "cpu/thread_pool.h"

namespace fusedoptim::cpu {
namespace {

using ops::DType;

constexpr double kInf = std::numeric_limits<double>::infinity();

// [note: scaler chunks] Work is split into chunks of whole rows, about
// kScalerChunkElements elements each (1 MiB of float32), a multiple of the
// kernels' tile, and never fewer than kMinChunkRows rows, so the per-chunk
// statistics (features x 40 bytes) stay small next to the chunk's data even
// for very wide matrices. Chunk boundaries depend only on the shape: each
// chunk's statistics are kept apart and merged in chunk order, so the result
// is the same for any thread count.
constexpr int64_t kScalerChunkElements = int64_t(1) << 18;
constexpr int64_t kMinChunkRows = 64;
// Features merged per work item of the final merge.
constexpr int64_t kMergeFeatures = 256;

struct RowChunks {
  int64_t rows_per_chunk;
  int64_t count;
};

RowChunks row_chunks(int64_t rows, int64_t features) {
  const int64_t tile_rows = rows_per_tile(features);
  const int64_t by_size = std::max<int64_t>(kScalerChunkElements / features, kMinChunkRows);
  const int64_t per_chunk = (by_size + tile_rows - 1) / tile_rows * tile_rows;
  return {per_chunk, (rows + per_chunk - 1) / per_chunk};
}

FeatureStats empty_stats() { return {{0.0, 0.0, 0.0}, kInf, -kInf}; }

bool holds_inf(const FeatureStats& s) { return s.max == kInf || s.min == -kInf; }

template <typename S>
int64_t first_inf_typed(const void* data, int64_t begin, int64_t end) {
  const S* x = static_cast<const S*>(data);
  for (int64_t i = begin; i < end; ++i) {
    if (std::isinf(x[i])) return i;
  }
  return -1;
}

// Error path only: the flagged chunk is scanned again, element by element.
int64_t first_inf(DType dtype, const void* data, int64_t begin, int64_t end) {
  return dtype == DType::kFloat64 ? first_inf_typed<double>(data, begin, end)
                                  : first_inf_typed<float>(data, begin, end);
}

// [note: shifted coordinates] in scaler_kernels.cpp: each feature's first
// finite value among the first kShiftRows rows, else 0.
constexpr int64_t kShiftRows = 64;

template <typename S>
void choose_shift_typed(const void* data, int64_t rows, int64_t features, double* shift) {
  const S* x = static_cast<const S*>(data);
  std::vector<char> found(static_cast<size_t>(features), 0);
  std::fill(shift, shift + features, 0.0);
  for (int64_t r = 0; r < std::min(rows, kShiftRows); ++r) {
    for (int64_t f = 0; f < features; ++f) {
      const double v = static_cast<double>(x[r * features + f]);
      if (found[f] || !std::isfinite(v)) continue;
      shift[f] = v;
      found[f] = 1;
    }
  }
}

void choose_shift(DType dtype, const void* data, int64_t rows, int64_t features, double* shift) {
  return dtype == DType::kFloat64 ? choose_shift_typed<double>(data, rows, features, shift)
                                  : choose_shift_typed<float>(data, rows, features, shift);
}

const char* at_row(const void* data, DType dtype, int64_t row, int64_t features) {
  return static_cast<const char*>(data) + row * features * ops::element_size(dtype);
}

}  // namespace

void scaler_merge(FeatureStats* into, const FeatureStats* other, int64_t features) {
  for (int64_t f = 0; f < features; ++f) {
    into[f].moments = ops::merge_moments(into[f].moments, other[f].moments);
    into[f].min = std::min(into[f].min, other[f].min);
    into[f].max = std::max(into[f].max, other[f].max);
  }
}

int64_t scaler_fit(const ScalerFitInput& in, FeatureStats* stats, int num_threads) {
  const int64_t features = in.features;
  const RowChunks chunks = row_chunks(in.rows, features);
  std::vector<FeatureStats> partials(static_cast<size_t>(chunks.count * features), empty_stats());
  std::vector<char> chunk_has_inf(static_cast<size_t>(chunks.count), 0);
  if (in.choose_shift) choose_shift(in.dtype, in.data, in.rows, features, in.shift);
  const double* shift = in.shift;
  const ScalerKernels& kernels = scaler_kernels();
  const int threads = threads_for(in.rows * features, num_threads);
  parallel_for(chunks.count, threads, [&](int64_t c) {
    const int64_t first = c * chunks.rows_per_chunk;
    const FitRows rows{in.dtype,
                       at_row(in.data, in.dtype, first, features),
                       in.weights != nullptr ? in.weights + first : nullptr,
                       shift,
                       std::min(chunks.rows_per_chunk, in.rows - first),
                       features,
                       in.moments};
    FeatureStats* part = partials.data() + c * features;
    kernels.fit_rows(rows, part);
    chunk_has_inf[c] = std::any_of(part, part + features, holds_inf);
  });
  for (int64_t c = 0; c < chunks.count; ++c) {
    if (!chunk_has_inf[c]) continue;
    const int64_t begin = c * chunks.rows_per_chunk * features;
    const int64_t end = std::min((c + 1) * chunks.rows_per_chunk, in.rows) * features;
    return first_inf(in.dtype, in.data, begin, end);
  }

  const int64_t blocks = (features + kMergeFeatures - 1) / kMergeFeatures;
  parallel_for(blocks, chunks.count * features < kSerialElements ? 1 : threads, [&](int64_t b) {
    const int64_t begin = b * kMergeFeatures;
    const int64_t width = std::min(kMergeFeatures, features - begin);
    std::fill(stats + begin, stats + begin + width, empty_stats());
    for (int64_t c = 0; c < chunks.count; ++c) {
      scaler_merge(stats + begin, partials.data() + c * features + begin, width);
    }
  });
  return -1;
}

int64_t scaler_transform(const ScalerTransformInput& in, int num_threads) {
  const int64_t features = in.features;
  const int64_t period = features * rows_per_tile(features);
  const RowChunks chunks = row_chunks(in.rows, features);
  // The parameters, one per lane of a tile, in the math type (see [note: tiles]).
  std::vector<double> a_double(static_cast<size_t>(period));
  std::vector<double> b_double(static_cast<size_t>(period));
  std::vector<float> a_float(static_cast<size_t>(period));
  std::vector<float> b_float(static_cast<size_t>(period));
  for (int64_t j = 0; j < period; ++j) {
    a_double[j] = in.a[j % features];
    b_double[j] = in.b[j % features];
    a_float[j] = static_cast<float>(a_double[j]);
    b_float[j] = static_cast<float>(b_double[j]);
  }
  const void* a = in.math_double ? static_cast<const void*>(a_double.data()) : a_float.data();
  const void* b = in.math_double ? static_cast<const void*>(b_double.data()) : b_float.data();

  const ScalerKernels& kernels = scaler_kernels();
  const int threads = threads_for(in.rows * features, num_threads);
  const int64_t element_bytes = ops::element_size(in.dtype);
  std::vector<char> chunk_has_inf(static_cast<size_t>(chunks.count), 0);
  auto chunk_numel = [&](int64_t c) {
    return (std::min((c + 1) * chunks.rows_per_chunk, in.rows) - c * chunks.rows_per_chunk) *
           features;
  };
  auto first_flagged = [&]() -> int64_t {
    for (int64_t c = 0; c < chunks.count; ++c) {
      if (!chunk_has_inf[c]) continue;
      const int64_t begin = c * chunks.rows_per_chunk * features;
      return first_inf(in.dtype, in.src, begin, begin + chunk_numel(c));
    }
    return -1;
  };

  if (in.src == in.dst) {
    // In place, a refused call must leave the data as it was: check first.
    parallel_for(chunks.count, threads, [&](int64_t c) {
      const char* src = at_row(in.src, in.dtype, c * chunks.rows_per_chunk, features);
      chunk_has_inf[c] = kernels.has_inf(in.dtype, src, chunk_numel(c));
    });
    const int64_t bad = first_flagged();
    if (bad >= 0) return bad;
  }
  parallel_for(chunks.count, threads, [&](int64_t c) {
    const int64_t offset = c * chunks.rows_per_chunk * features * element_bytes;
    const TransformSpan span{in.dtype,
                             in.math_double,
                             in.op,
                             static_cast<const char*>(in.src) + offset,
                             static_cast<char*>(in.dst) + offset,
                             chunk_numel(c),
                             period,
                             a,
                             b,
                             in.clip,
                             in.low,
                             in.high};
    chunk_has_inf[c] = kernels.transform(span);
  });
  return in.src == in.dst ? -1 : first_flagged();
}

}  // namespace fusedoptim::cpu
