// The CPU multi-tensor driver: one parallel region per call over a flat list
// of fixed-size chunks drawn from every tensor of the batch.
#pragma once

#include "ops/adam.h"
#include "ops/sgd.h"
#include "optim_batch.h"

namespace fusedoptim::cpu {

// What a span of chunk `c` needs of a call's Precision (shared with quant_cpu.cpp).
struct Chunk;
struct SpanPrecision;
SpanPrecision span_precision(const Precision& precision, const Chunk& c);

void adam_step(const AdamBatch& batch, const ops::AdamHyper& hyper, int num_threads);
void sgd_step(const SgdBatch& batch, const ops::SgdHyper& hyper, int num_threads);

}  // namespace fusedoptim::cpu
