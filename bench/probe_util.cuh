// probe_util.cuh — what the standalone sm_90a probes (overlap_probe.cu, pingpong_probe.cu) share:
// checked CUDA runtime calls, and the times of repeated launches of one kernel.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

#define PROBE_CHECK(call)                                                                            \
  do {                                                                                               \
    const cudaError_t e = (call);                                                                    \
    if (e != cudaSuccess) {                                                                          \
      std::fprintf(stderr, "%s: %s (%s:%d)\n", #call, cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

// The times (ms, ascending) of `reps` launches made by `launch()`, each between two events, after
// one untimed warm-up launch.
template <typename Launch>
std::vector<float> launch_times(int reps, Launch&& launch) {
  cudaEvent_t a, b;
  PROBE_CHECK(cudaEventCreate(&a));
  PROBE_CHECK(cudaEventCreate(&b));
  launch();
  PROBE_CHECK(cudaGetLastError());
  std::vector<float> ms(reps);
  for (float& t : ms) {
    PROBE_CHECK(cudaEventRecord(a));
    launch();
    PROBE_CHECK(cudaGetLastError());
    PROBE_CHECK(cudaEventRecord(b));
    PROBE_CHECK(cudaEventSynchronize(b));
    PROBE_CHECK(cudaEventElapsedTime(&t, a, b));
  }
  PROBE_CHECK(cudaEventDestroy(a));
  PROBE_CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms;
}
