// A small persistent thread pool for the optimizer step.
//
// [note: why not OpenMP] torch ships its own OpenMP runtime; a second one in
// this extension would keep a second set of spinning threads on the same
// cores. Our workers spin only briefly after a job and then sleep on a
// condition variable, so between steps they leave the cores to torch's
// forward/backward threads.
#pragma once

#include <cstdint>

namespace fusedoptim::cpu {

// Calls body(context, item) for every item in [0, num_items), spread over
// num_threads threads (the caller is one of them). Items are handed out
// dynamically, so uneven items still keep every thread busy. Falls back to the
// calling thread alone when another call is already using the pool (two
// Python threads stepping two optimizers at once).
using ItemFn = void (*)(const void* context, int64_t item);
void parallel_for(int64_t num_items, int num_threads, ItemFn body, const void* context);

// Typed convenience wrapper: body is any callable taking (int64_t item).
template <typename Body>
void parallel_for(int64_t num_items, int num_threads, const Body& body) {
  parallel_for(
      num_items, num_threads,
      [](const void* ctx, int64_t item) { (*static_cast<const Body*>(ctx))(item); }, &body);
}

// Threads the machine offers (std::thread::hardware_concurrency, at least 1).
int hardware_threads();

}  // namespace fusedoptim::cpu
