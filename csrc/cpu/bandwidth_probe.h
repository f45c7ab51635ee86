// Benchmark references for the suite in fusedoptim._bench (fusedoptim bench).
// Nothing here is used by the optimizers: these loops exist so a benchmark run
// can state, on the machine and in the same process, how fast memory moves
// and how fast a straightforward fused C loop does the same update.
#pragma once

#include <cstdint>
#include <vector>

namespace fusedoptim::cpu::bench {

// The bandwidth line. For every array a in `inplace` and every i < n:
//   a[i] = a[i] * scale + source[i]
// With k in-place arrays that is 4 * (2k + 1) bytes moved per element: k = 1
// is plain SGD's pattern (12 B), k = 2 SGD with momentum (20 B), k = 3 Adam
// (28 B: read p, m, v, g; write p, m, v). 1 <= inplace.size() <= 3.
void bandwidth_probe(const std::vector<float*>& inplace, const float* source, int64_t n,
                     float scale, int num_threads);

// The "plain fused C loop" baseline: fp32 AdamW (Adam when weight_decay = 0)
// written the way one would write it by hand, one pass, step scalars hoisted.
struct PlainAdamWArgs {
  std::vector<float*> params;
  std::vector<const float*> grads;
  std::vector<float*> exp_avgs;
  std::vector<float*> exp_avg_sqs;
  std::vector<int64_t> numels;
  double lr, beta1, beta2, eps, weight_decay, step;
};
void plain_adamw(const PlainAdamWArgs& args, int num_threads);

// The same for fp32 SGD: p -= lr * g, or with momentum (dampening 0, not
// Nesterov) b = momentum * b + g; p -= lr * b. `buffers` is empty without momentum.
struct PlainSgdArgs {
  std::vector<float*> params;
  std::vector<const float*> grads;
  std::vector<float*> buffers;
  std::vector<int64_t> numels;
  double lr, momentum;
};
void plain_sgd(const PlainSgdArgs& args, int num_threads);

}  // namespace fusedoptim::cpu::bench
