/* SPDX-License-Identifier: MIT */
/* Memory read bandwidth of this machine: the roofline for decode, which streams every weight once
 * per token. STREAM-like: T threads each sum their own slice of a buffer much larger than the
 * caches (256-bit loads, four independent accumulators, software prefetch 4 KiB ahead); the best of
 * R passes is reported, as STREAM does, since the machine's other load can only slow a pass down.
 * On a shared machine the wall-clock figure includes time the threads spent descheduled, so the
 * figure from each thread's own CPU time (bytes / the slowest thread's CPU time) is printed too:
 * the bandwidth while running.
 *
 *   cc -O2 -mavx2 -fopenmp tools/bench_bandwidth.c -o /tmp/bw && /tmp/bw [MiB] [passes] [threads]
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
  const int passes = argc > 2 ? atoi(argv[2]) : 10;
  const int threads = argc > 3 ? atoi(argv[3]) : 2;
  if (mib < 64 || passes < 1 || threads < 1) {
    fprintf(stderr, "bench_bandwidth: need MiB >= 64, passes >= 1, threads >= 1\n");
    return 2;
  }
  const size_t n = mib * 1024 * 1024 / sizeof(float);
  float* a = aligned_alloc(64, n * sizeof(float));
  if (!a) {
    fprintf(stderr, "bench_bandwidth: cannot allocate %zu MiB\n", mib);
    return 2;
  }
  omp_set_num_threads(threads);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = (float)(i & 1023) * 1e-3f;  // touch every page

  double best = 0.0, best_cpu = 0.0, sink = 0.0;
  for (int p = 0; p < passes; ++p) {
    const double t0 = omp_get_wtime();
    double total = 0.0, slowest_cpu = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) reduction(max : slowest_cpu)
    for (int t = 0; t < threads; ++t) {
      struct timespec c0, c1;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
      const size_t lo = n / threads * t, hi = t + 1 == threads ? n : n / threads * (t + 1);
      __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      size_t i = lo;
      for (; i + 32 <= hi; i += 32) {
        /* 4 KiB ahead, as apr's decode kernels prefetch their weights: without it this loop
         * read about 10 % slower than apr's F32 decode, so it was no upper bound. */
        _mm_prefetch((const char*)(a + i) + 4096, _MM_HINT_T0);
        _mm_prefetch((const char*)(a + i) + 4096 + 64, _MM_HINT_T0);
        s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
      }
      float v[8];
      _mm256_storeu_ps(v, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
      for (int k = 0; k < 8; ++k) total += v[k];
      for (; i < hi; ++i) total += a[i];
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
      const double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
      if (cpu > slowest_cpu) slowest_cpu = cpu;
    }
    const double gbs = (double)n * sizeof(float) / (omp_get_wtime() - t0) / 1e9;
    const double cpu_gbs = (double)n * sizeof(float) / slowest_cpu / 1e9;
    sink += total;
    if (gbs > best) best = gbs;
    if (cpu_gbs > best_cpu) best_cpu = cpu_gbs;
    printf("pass %d: %.2f GB/s wall, %.2f GB/s by thread CPU time\n", p + 1, gbs, cpu_gbs);
  }
  printf(
      "read bandwidth, %d threads, %zu MiB: best %.2f GB/s wall, %.2f GB/s by CPU time "
      "(checksum %g)\n",
      threads, mib, best, best_cpu, sink);
  free(a);
  return 0;
}
