#include "cpu/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
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

// [note: spin before sleeping] A worker that just finished a step spins this
// many pause instructions (a few microseconds) before it blocks. Back-to-back
// calls (one per param group) then skip the futex wake-up, while a training
// loop's forward pass gets the core back almost at once.
constexpr int kSpinIterations = 4000;

struct Job {
  ItemFn body = nullptr;
  const void* context = nullptr;
  int64_t num_items = 0;
  int participants = 0;  // workers (besides the caller) that take part
  std::atomic<int64_t> next_item{0};
  std::atomic<int> workers_done{0};
};

void run_items(Job& job) {
  for (;;) {
    const int64_t item = job.next_item.fetch_add(1, std::memory_order_relaxed);
    if (item >= job.num_items) return;
    job.body(job.context, item);
  }
}

class ThreadPool {
 public:
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  // Returns false when the pool is busy with another caller's job.
  bool run(int num_threads, Job& job) {
    std::unique_lock<std::mutex> submit(submit_mutex_, std::try_to_lock);
    if (!submit.owns_lock()) return false;
    ensure_workers(num_threads - 1);
    job.participants = num_threads - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      participants_ = job.participants;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_items(job);
    while (job.workers_done.load(std::memory_order_acquire) < job.participants) {
      FUSEDOPTIM_CPU_RELAX();
    }
    return true;
  }

 private:
  void ensure_workers(int count) {
    while (static_cast<int>(threads_.size()) < count) {
      const int index = static_cast<int>(threads_.size());
      // The generation is read here, before the job that needs this worker is
      // published, so the new worker cannot miss that job.
      const uint64_t seen = generation_.load(std::memory_order_acquire);
      threads_.emplace_back([this, index, seen] { worker_loop(index, seen); });
    }
  }

  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      uint64_t current = seen;
      for (int spin = 0; spin < kSpinIterations; ++spin) {
        current = generation_.load(std::memory_order_acquire);
        if (current != seen) break;
        FUSEDOPTIM_CPU_RELAX();
      }
      if (current == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        current = generation_.load(std::memory_order_acquire);
      }
      seen = current;
      // Only participants touch the job: the caller waits for them alone, so
      // for anyone else the job may already be gone.
      Job* job;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        if (index >= participants_) continue;
        job = job_;
      }
      run_items(*job);
      job->workers_done.fetch_add(1, std::memory_order_release);
    }
  }

  std::mutex submit_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  Job* job_ = nullptr;
  int participants_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// The pool is created on first use and deliberately never destroyed: joining
// threads during interpreter shutdown, or in a forked child where they do not
// exist, would hang. After fork() the child starts a fresh pool.
ThreadPool* g_pool = nullptr;
std::once_flag g_atfork_once;

ThreadPool& pool() {
  std::call_once(g_atfork_once, [] {
    pthread_atfork(nullptr, nullptr, [] { g_pool = nullptr; });
  });
  if (g_pool == nullptr) g_pool = new ThreadPool();
  return *g_pool;
}

}  // namespace

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

void parallel_for(int64_t num_items, int num_threads, ItemFn body, const void* context) {
  if (num_items <= 0) return;
  num_threads = static_cast<int>(std::min<int64_t>(std::max(num_threads, 1), num_items));
  Job job;
  job.body = body;
  job.context = context;
  job.num_items = num_items;
  if (num_threads == 1 || !pool().run(num_threads, job)) run_items(job);
}

}  // namespace fusedoptim::cpu
