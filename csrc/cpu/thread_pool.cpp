#include "cpu/thread_pool.h"

#include <dlfcn.h>
#if defined(__linux__)
#include <link.h>
#endif
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FUSEDOPTIM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FUSEDOPTIM_CPU_RELAX() asm volatile("yield")
#else
#define FUSEDOPTIM_CPU_RELAX() ((void)0)
#endif

namespace fusedoptim::cpu {
namespace {

// [note: spin before sleeping] A worker that finished a job spins this many
// pause instructions (a few microseconds) before it blocks, so back-to-back
// calls (one per param group and dtype) skip the futex wake-up, while a
// training loop's forward pass gets the core back almost at once.
constexpr int kWorkerSpins = 2000;
constexpr int kCallerSpins = 200;

// [note: claiming items] The job's cursor packs (job id, item count, next
// item) into one atomic word; a thread claims an item with a compare-exchange
// that fails once the id changes or the items run out. So a worker that wakes
// late can never touch a finished job (the caller returns once every item is
// done, not once every worker has shown up), and a worker that is descheduled
// never holds up a caller that has no items left to claim.
constexpr int kIndexBits = 24;
constexpr int kCountBits = 24;
constexpr uint64_t kFieldMask = (uint64_t(1) << kIndexBits) - 1;
constexpr int64_t kMaxItemsPerJob = int64_t(1) << kIndexBits;

uint64_t pack(uint64_t job_id, uint64_t count, uint64_t index) {
  return (job_id << (kIndexBits + kCountBits)) | (count << kIndexBits) | index;
}

class ThreadPool {
 public:
  // Runs one job of at most kMaxItemsPerJob items; false if the pool is busy.
  bool run(int num_threads, int64_t num_items, ItemFn body, const void* context) {
    std::unique_lock<std::mutex> submit(submit_mutex_, std::try_to_lock);
    if (!submit.owns_lock()) return false;
    ensure_workers(num_threads - 1);
    body_ = body;
    context_ = context;
    items_done_.store(0, std::memory_order_relaxed);
    max_workers_.store(num_threads - 1, std::memory_order_relaxed);
    job_id_ = (job_id_ + 1) & 0xFFFF;
    cursor_.store(pack(job_id_, uint64_t(num_items), 0), std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      wake_generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    const int64_t mine = run_items(job_id_);
    int64_t done = items_done_.fetch_add(mine, std::memory_order_acq_rel) + mine;
    for (int spin = 0; done < num_items; ++spin) {
      if (spin < kCallerSpins) {
        FUSEDOPTIM_CPU_RELAX();
      } else {
        std::this_thread::yield();  // a claimed item's worker may need this core
      }
      done = items_done_.load(std::memory_order_acquire);
    }
    return true;
  }

 private:
  // Claims and runs items of job `job_id` until none are left; returns how many.
  int64_t run_items(uint64_t job_id) {
    int64_t ran = 0;
    uint64_t word = cursor_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t index = word & kFieldMask;
      const uint64_t count = (word >> kIndexBits) & kFieldMask;
      if ((word >> (kIndexBits + kCountBits)) != job_id || index >= count) return ran;
      if (cursor_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel)) {
        body_(context_, static_cast<int64_t>(index));
        ++ran;
        word = cursor_.load(std::memory_order_acquire);
      }
    }
  }

  void ensure_workers(int count) {
    while (static_cast<int>(threads_.size()) < count) {
      const int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index] { worker_loop(index); });
    }
  }

  void worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t current = wake_generation_.load(std::memory_order_acquire);
      for (int spin = 0; current == seen && spin < kWorkerSpins; ++spin) {
        FUSEDOPTIM_CPU_RELAX();
        current = wake_generation_.load(std::memory_order_acquire);
      }
      if (current == seen) {
        std::unique_lock<std::mutex> lock(wake_mutex_);
        wake_.wait(lock, [&] { return wake_generation_.load(std::memory_order_acquire) != seen; });
        current = wake_generation_.load(std::memory_order_acquire);
      }
      seen = current;
      if (index >= max_workers_.load(std::memory_order_relaxed)) continue;
      const uint64_t job_id = cursor_.load(std::memory_order_acquire) >> (kIndexBits + kCountBits);
      const int64_t ran = run_items(job_id);
      if (ran > 0) items_done_.fetch_add(ran, std::memory_order_acq_rel);
    }
  }

  std::mutex submit_mutex_;
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> wake_generation_{0};
  std::atomic<uint64_t> cursor_{0};
  std::atomic<int64_t> items_done_{0};
  std::atomic<int> max_workers_{0};
  uint64_t job_id_ = 0;
  ItemFn body_ = nullptr;
  const void* context_ = nullptr;
  std::vector<std::thread> threads_;
};

// Created on first use and deliberately never destroyed: joining threads
// during interpreter shutdown, or in a forked child where they do not exist,
// would hang. After fork() the child starts a fresh pool.
ThreadPool* g_pool = nullptr;
std::once_flag g_atfork_once;

ThreadPool& pool() {
  std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, [] { g_pool = nullptr; }); });
  if (g_pool == nullptr) g_pool = new ThreadPool();
  return *g_pool;
}

void run_serial(int64_t num_items, ItemFn body, const void* context) {
  for (int64_t item = 0; item < num_items; ++item) body(context, item);
}

// [note: borrowing torch's OpenMP team] torch runs its CPU ops on an OpenMP
// team whose idle threads keep spinning for a while after each op (libgomp's
// default spin count). A step that starts right after the backward pass on a
// pool of its own then has three busy threads on two cores: in a training loop
// of 48 Linear(256, 256) layers the step took 9% longer than alone that way,
// 2% on torch's team. So when the process has already loaded an OpenMP
// runtime (torch's: libgomp on Linux; Intel's and LLVM's runtimes export the
// same GOMP_parallel entry point), the parallel region runs on that runtime's
// team, the same threads torch uses, exactly as `#pragma omp parallel` would,
// without linking OpenMP ourselves (the wheel keeps no OpenMP dependency and
// never loads a second runtime). Without one, our own pool runs the region.
using GompParallel = void (*)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);

struct OpenMPRuntime {
  GompParallel parallel = nullptr;
  std::string name;  // the library's file name
};

// The OpenMP runtimes this process has loaded, torch's own (under torch/lib)
// first: on Linux every loaded library whose file name says so, which also
// finds runtimes that a wheel renamed (libgomp-<hash>.so.1); elsewhere the
// usual names.
std::vector<std::string> loaded_openmp_libraries() {
  std::vector<std::string> paths;
#if defined(__linux__)
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const std::string path = info->dlpi_name != nullptr ? info->dlpi_name : "";
        const std::string file = path.substr(path.find_last_of('/') + 1);
        for (const char* prefix : {"libgomp", "libiomp5", "libomp"}) {
          if (file.rfind(prefix, 0) == 0) {
            static_cast<std::vector<std::string>*>(out)->push_back(path);
            break;
          }
        }
        return 0;
      },
      &paths);
  std::stable_partition(paths.begin(), paths.end(), [](const std::string& path) {
    return path.find("/torch/lib/") != std::string::npos;
  });
#else
  paths = {"libomp.dylib", "libiomp5.dylib", "libgomp.1.dylib"};
#endif
  return paths;
}

OpenMPRuntime find_loaded_openmp_runtime() {
#if defined(RTLD_NOLOAD)
  for (const std::string& path : loaded_openmp_libraries()) {
    if (void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
      if (void* entry = dlsym(handle, "GOMP_parallel")) {
        return {reinterpret_cast<GompParallel>(entry), path.substr(path.find_last_of('/') + 1)};
      }
    }
  }
#endif
  return {};
}

// Looked up once, on first use: torch is imported (and its runtime loaded)
// before _C. FUSEDOPTIM_PARALLEL=pool keeps the step on our own pool (for
// comparisons, or on a machine so oversubscribed that waiting at OpenMP's
// closing barrier for a descheduled team thread costs more than the fight).
const OpenMPRuntime& openmp_runtime() {
  static const OpenMPRuntime runtime = [] {
    const char* choice = std::getenv("FUSEDOPTIM_PARALLEL");
    if (choice != nullptr && std::string(choice) == "pool") return OpenMPRuntime{};
    return find_loaded_openmp_runtime();
  }();
  return runtime;
}

struct OpenMPJob {
  std::atomic<int64_t> next{0};
  int64_t num_items;
  ItemFn body;
  const void* context;
};

void run_openmp_items(void* data) {
  auto* job = static_cast<OpenMPJob*>(data);
  for (int64_t item = job->next.fetch_add(1, std::memory_order_relaxed); item < job->num_items;
       item = job->next.fetch_add(1, std::memory_order_relaxed)) {
    job->body(job->context, item);
  }
}

}  // namespace

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

std::string parallel_backend() {
  const OpenMPRuntime& runtime = openmp_runtime();
  return runtime.parallel != nullptr ? std::string("openmp (") + runtime.name + ")" : "pool";
}

void parallel_for(int64_t num_items, int num_threads, ItemFn body, const void* context) {
  if (num_items <= 0) return;
  num_threads = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), num_items));
  if (num_threads == 1) return run_serial(num_items, body, context);
  if (const GompParallel openmp = openmp_runtime().parallel) {
    OpenMPJob job;
    job.num_items = num_items;
    job.body = body;
    job.context = context;
    return openmp(&run_openmp_items, &job, static_cast<unsigned>(num_threads), 0);
  }
  if (num_items > kMaxItemsPerJob || !pool().run(num_threads, num_items, body, context)) {
    run_serial(num_items, body, context);
  }
}

}  // namespace fusedoptim::cpu
