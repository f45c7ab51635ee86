// Confusion-matrix counting on the CPU: pairs of integer labels in, one C x C
// table of counts out (row = true label, column = predicted label).
#pragma once

#include <cstdint>

namespace fusedoptim::cpu {

// Codes shared with python/fusedoptim/_backend.py (_LABEL_DTYPE_CODES).
enum class LabelDType : int { kInt32 = 0, kInt64 = 1 };
// Codes shared with python/fusedoptim/_backend.py (_COUNT_DTYPE_CODES).
enum class CountDType : int { kInt64 = 0, kFloat64 = 1 };

struct LabelPairs {
  const void* y_true = nullptr;
  const void* y_pred = nullptr;
  LabelDType dtype = LabelDType::kInt64;
  int64_t size = 0;
  int64_t num_classes = 0;
  const double* weights = nullptr;  // null: every pair counts 1
};

// Adds every pair (t, p) to counts[t * num_classes + p]: 1 (or weights[i]).
// Returns -1 on success. Otherwise returns the index of the first pair holding
// a label outside [0, num_classes) and leaves counts exactly as it was.
int64_t confusion_matrix_add(const LabelPairs& pairs, int64_t* counts, int num_threads);
int64_t confusion_matrix_add(const LabelPairs& pairs, double* counts, int num_threads);

}  // namespace fusedoptim::cpu
