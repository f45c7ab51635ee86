// [note: how these references are built] This file gets -O3 on top of the
// module's flags (-fno-math-errno among them, without which gcc leaves sqrtf
// scalar; see CMakeLists.txt). It is not one of the per-ISA kernel builds:
// instead each loop is cloned by the compiler for AVX-512, AVX2 and the
// baseline and the loader picks the best clone, which is what a careful C
// programmer gets from a plain loop without host-specific compiler flags. The loops are
// split with the optimizers' own chunk list and thread pool, so a difference
// against fusedoptim is the loop body and the Python-side overhead, not the
// threading.
#include "cpu/bandwidth_probe.h"

#include <cmath>

#include "cpu/chunk_list.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define FUSEDOPTIM_BENCH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FUSEDOPTIM_BENCH_CLONES
#endif

namespace fusedoptim::cpu::bench {
namespace {

// One pass per chunk over all arrays at once, as the optimizers' loops do:
// the stores go to lines the same iteration has just read.
FUSEDOPTIM_BENCH_CLONES
void probe_span1(float* __restrict a, const float* __restrict source, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] * scale + source[i];
}

FUSEDOPTIM_BENCH_CLONES
void probe_span2(float* __restrict a, float* __restrict b, const float* __restrict source,
                 int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    a[i] = a[i] * scale + source[i];
    b[i] = b[i] * scale + source[i];
  }
}

FUSEDOPTIM_BENCH_CLONES
void probe_span3(float* __restrict a, float* __restrict b, float* __restrict c,
                 const float* __restrict source, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    a[i] = a[i] * scale + source[i];
    b[i] = b[i] * scale + source[i];
    c[i] = c[i] * scale + source[i];
  }
}

struct AdamWScalars {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, inv_bc2_sqrt, eps;
};

FUSEDOPTIM_BENCH_CLONES
void adamw_span(float* __restrict p, const float* __restrict g, float* __restrict m,
                float* __restrict v, int64_t n, AdamWScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = s.beta1 * m[i] + s.one_minus_beta1 * gi;
    const float vi = s.beta2 * v[i] + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * s.decay - s.step_size * mi / (std::sqrt(vi) * s.inv_bc2_sqrt + s.eps);
  }
}

FUSEDOPTIM_BENCH_CLONES
void sgd_span(float* __restrict p, const float* __restrict g, int64_t n, float lr) {
  for (int64_t i = 0; i < n; ++i) p[i] -= lr * g[i];
}

FUSEDOPTIM_BENCH_CLONES
void sgd_momentum_span(float* __restrict p, const float* __restrict g, float* __restrict b,
                       int64_t n, float lr, float momentum) {
  for (int64_t i = 0; i < n; ++i) {
    const float bi = momentum * b[i] + g[i];
    b[i] = bi;
    p[i] -= lr * bi;
  }
}

}  // namespace

void bandwidth_probe(const std::vector<float*>& inplace, const float* source, int64_t n,
                     float scale, int num_threads) {
  const ChunkList chunks = make_chunks({n});
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    const float* g = source + c.begin;
    switch (inplace.size()) {
      case 1:
        return probe_span1(inplace[0] + c.begin, g, c.numel, scale);
      case 2:
        return probe_span2(inplace[0] + c.begin, inplace[1] + c.begin, g, c.numel, scale);
      default:
        return probe_span3(inplace[0] + c.begin, inplace[1] + c.begin, inplace[2] + c.begin, g,
                           c.numel, scale);
    }
  });
}

void plain_adamw(const PlainAdamWArgs& args, int num_threads) {
  const double bias_correction1 = 1.0 - std::pow(args.beta1, args.step);
  const double bias_correction2 = 1.0 - std::pow(args.beta2, args.step);
  const AdamWScalars s{float(1.0 - args.lr * args.weight_decay),
                       float(args.beta1),
                       float(1.0 - args.beta1),
                       float(args.beta2),
                       float(1.0 - args.beta2),
                       float(args.lr / bias_correction1),
                       float(1.0 / std::sqrt(bias_correction2)),
                       float(args.eps)};
  const ChunkList chunks = make_chunks(args.numels);
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    adamw_span(args.params[c.tensor] + c.begin, args.grads[c.tensor] + c.begin,
               args.exp_avgs[c.tensor] + c.begin, args.exp_avg_sqs[c.tensor] + c.begin, c.numel, s);
  });
}

void plain_sgd(const PlainSgdArgs& args, int num_threads) {
  const bool momentum = !args.buffers.empty();
  const float lr = float(args.lr);
  const float beta = float(args.momentum);
  const ChunkList chunks = make_chunks(args.numels);
  parallel_for_chunks(chunks, num_threads, [&](int64_t index) {
    const Chunk& c = chunks.chunks[index];
    float* p = args.params[c.tensor] + c.begin;
    const float* g = args.grads[c.tensor] + c.begin;
    if (momentum) {
      sgd_momentum_span(p, g, args.buffers[c.tensor] + c.begin, c.numel, lr, beta);
    } else {
      sgd_span(p, g, c.numel, lr);
    }
  });
}

}  // namespace fusedoptim::cpu::bench
