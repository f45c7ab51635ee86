// The parallel region of a step: on torch's OpenMP team when the process has
// loaded an OpenMP runtime, else on a small persistent pool of our own.
//
// [note: why not link OpenMP] torch ships its own OpenMP runtime; a second one
// linked into this extension would keep a second set of spinning threads on
// the same cores. So we link none: thread_pool.cpp finds the runtime torch
// has already loaded and runs the region on its team (see [note: borrowing
// torch's OpenMP team]). The fallback pool's workers spin only briefly after
// a job and then sleep on a condition variable.
#pragma once

#include <cstdint>
#include <string>

namespace fusedoptim::cpu {

// Calls body(context, item) for every item in [0, num_items), spread over
// num_threads threads (the caller is one of them). Items are handed out
// dynamically, so uneven items still keep every thread busy. The fallback pool
// runs on the calling thread alone when another call is already using it (two
// Python threads stepping two optimizers at once); an OpenMP runtime gives
// each calling thread a team of its own.
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

// Who runs parallel regions: "openmp (<runtime library>)" or "pool".
std::string parallel_backend();

}  // namespace fusedoptim::cpu
