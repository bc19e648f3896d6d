// device_buffer.hpp — one device allocation owned by RAII, for the checks, tests and benchmarks
// (the hot path never allocates: it uses runtime/workspace).
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "runtime/driver.hpp"

namespace sagejit {

class DeviceBuffer {
 public:
  // Allocates at least 256 bytes, so an empty tensor still has a valid, aligned address.
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    SAGEJIT_CU(cuMemAlloc, &ptr_, std::max<std::size_t>(bytes, 256));
  }
  ~DeviceBuffer() { driver().cuMemFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  CUdeviceptr ptr() const { return ptr_; }
  void* get() const { return reinterpret_cast<void*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

  template <class T>
  void upload(const std::vector<T>& host) {
    if (host.size() * sizeof(T) > bytes_) throw std::length_error("DeviceBuffer::upload: more data than the buffer");
    if (!host.empty()) SAGEJIT_CU(cuMemcpyHtoD, ptr_, host.data(), host.size() * sizeof(T));
  }
  template <class T>
  std::vector<T> download(std::size_t count, std::size_t byte_offset = 0) const {
    std::vector<T> host(count);
    if (count) SAGEJIT_CU(cuMemcpyDtoH, host.data(), ptr_ + byte_offset, count * sizeof(T));
    return host;
  }
  // Fills with a byte pattern so unwritten outputs stand out (0xFF: NaN for fp16/bf16/fp32).
  void poison(unsigned char byte = 0xFF) { SAGEJIT_CU(cuMemsetD8, ptr_, byte, std::max<std::size_t>(bytes_, 256)); }

 private:
  CUdeviceptr ptr_ = 0;
  std::size_t bytes_;
};

}  // namespace sagejit
