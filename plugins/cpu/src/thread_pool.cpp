// SPDX-License-Identifier: MIT
#include "thread_pool.hpp"

#include <chrono>

namespace apr_cpu {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Decoding issues hundreds of small jobs per token; polling for a short while before sleeping
// saves a futex wake-up per job. Bounded, so an idle pool costs nothing.
template <typename Done>
void spin_until(Done&& done) {
  constexpr auto kSpinTime = std::chrono::microseconds(100);
  const auto start = std::chrono::steady_clock::now();
  for (unsigned i = 1; !done(); ++i) {
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() - start > kSpinTime) return;
  }
}

}  // namespace

ThreadPool::ThreadPool(unsigned n_threads) {
  if (n_threads == 0) n_threads = std::thread::hardware_concurrency();
  if (n_threads == 0) n_threads = 1;
  workers_.reserve(n_threads - 1);
  for (unsigned i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::work_on(const std::function<void(size_t)>& task, size_t n_tasks) {
  for (;;) {
    const size_t i = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_tasks) return;
    try {
      task(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_error_) first_error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop() {
  unsigned long seen = 0;
  for (;;) {
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
    const std::function<void(size_t)>* task;
    size_t n_tasks;
    {
      // The job is captured under the lock: run() waits for every worker that captured it, and a
      // worker that wakes after the job ended finds task_ cleared.
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (!task_) continue;
      task = task_;
      n_tasks = n_tasks_;
      ++busy_workers_;
    }
    work_on(*task, n_tasks);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --busy_workers_;
    }
    done_.notify_one();
  }
}

void ThreadPool::run(size_t n_tasks, const std::function<void(size_t)>& task) {
  if (n_tasks == 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (size_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    first_error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  work_on(task, n_tasks);
  spin_until([&] { return busy_workers_.load(std::memory_order_acquire) == 0; });
  std::exception_ptr error;
  {
    // Checked again under the lock: a worker may have taken the job just after the spin looked.
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_workers_ == 0; });
    task_ = nullptr;
    error = first_error_;
    first_error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace apr_cpu
