// SPDX-License-Identifier: MIT
// A persistent pool of worker threads. The calling thread takes part in every job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace apr_cpu {

class ThreadPool {
 public:
  // n_threads counts the calling thread; 0 means the hardware concurrency.
  explicit ThreadPool(unsigned n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Calls task(i) once for every i < n_tasks and returns when all are done. Tasks are handed out
  // dynamically, so a task's result must not depend on which thread runs it.
  void run(size_t n_tasks, const std::function<void(size_t)>& task);

 private:
  void worker_loop();
  void work_on(const std::function<void(size_t)>& task, size_t n_tasks);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(size_t)>* task_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_task_{0};
  // Written under mutex_; atomic so that spinning threads may read them without it.
  std::atomic<size_t> busy_workers_{0};
  std::atomic<unsigned long> generation_{0};
  bool stopping_ = false;
  std::exception_ptr first_error_;
};

}  // namespace apr_cpu
