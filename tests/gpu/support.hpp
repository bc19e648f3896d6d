// support.hpp — what the GPU tests share: the skip decorator, device buffers, random host data.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/driver.hpp"

namespace sagejit::test {

// Decorates every GPU test case: skipped (not passed) when no GPU is visible.
inline auto needs_gpu() { return doctest::skip(!gpu_available()); }

// A device allocation, freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes) SAGEJIT_CU(cuMemAlloc, &ptr_, bytes);
  }
  ~DeviceBuffer() {
    if (ptr_) driver().cuMemFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return reinterpret_cast<void*>(ptr_); }
  std::size_t bytes() const { return bytes_; }
  template <class T>
  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() * sizeof(T) <= bytes_);
    SAGEJIT_CU(cuMemcpyHtoD, ptr_, host.data(), host.size() * sizeof(T));
  }
  template <class T>
  std::vector<T> download(std::size_t count, std::size_t byte_offset = 0) const {
    std::vector<T> host(count);
    if (count) SAGEJIT_CU(cuMemcpyDtoH, host.data(), ptr_ + byte_offset, count * sizeof(T));
    return host;
  }
  // Fills with a byte pattern, so unwritten outputs are visible (0xFF: NaN for floats, -1 for int8).
  void poison(unsigned char byte = 0xFF) {
    if (bytes_) SAGEJIT_CU(cuMemsetD8, ptr_, byte, bytes_);
  }

 private:
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace sagejit::test
