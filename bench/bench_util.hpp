// bench_util.hpp — timing with CUDA events (median of many runs) and device buffers for benches.
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"

namespace sagejit::bench {

// Milliseconds of each of `runs` calls of `body(i)` on `stream`, sorted, after `warmup` calls; each
// call is bracketed by its own pair of events.
inline std::vector<double> sorted_times_ms(CUstream stream, int warmup, int runs,
                                           const std::function<void(int)>& body) {
  for (int i = 0; i < warmup; ++i) body(i);
  CUevent start, stop;
  SAGEJIT_CU(cuEventCreate, &start, CU_EVENT_DEFAULT);
  SAGEJIT_CU(cuEventCreate, &stop, CU_EVENT_DEFAULT);
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    SAGEJIT_CU(cuEventRecord, start, stream);
    body(warmup + i);
    SAGEJIT_CU(cuEventRecord, stop, stream);
    SAGEJIT_CU(cuEventSynchronize, stop);
    float ms = 0;
    SAGEJIT_CU(cuEventElapsedTime, &ms, start, stop);
    times.push_back(ms);
  }
  driver().cuEventDestroy(start);
  driver().cuEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times;
}

// Median milliseconds of `runs` calls of `body(i)` on `stream`, after `warmup` calls.
inline double median_ms(CUstream stream, int warmup, int runs, const std::function<void(int)>& body) {
  const std::vector<double> times = sorted_times_ms(stream, warmup, runs, body);
  return times[times.size() / 2];
}

using Buffer = sagejit::DeviceBuffer;


}  // namespace sagejit::bench
