// bench_util.hpp — timing with CUDA events (median of many runs) and device buffers for benches.
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

#include "runtime/driver.hpp"

namespace sagejit::bench {

// Median milliseconds of `runs` calls of `body(i)` on `stream`, after `warmup` calls; each call is
// bracketed by its own pair of events.
inline double median_ms(CUstream stream, int warmup, int runs, const std::function<void(int)>& body) {
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
  return times[times.size() / 2];
}

class Buffer {
 public:
  explicit Buffer(std::size_t bytes) : bytes_(bytes) { SAGEJIT_CU(cuMemAlloc, &ptr_, std::max<std::size_t>(bytes, 256)); }
  ~Buffer() { driver().cuMemFree(ptr_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* get() const { return reinterpret_cast<void*>(ptr_); }
  CUdeviceptr ptr() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_;
};

}  // namespace sagejit::bench
