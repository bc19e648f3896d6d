// device_fill.hpp — fills large benchmark inputs with pseudo-random fp16 on the GPU (a host fill of
// gigabytes would take longer than the benchmark). Values are uniform in [-2, 2): never zeros.
#pragma once

#include "runtime/device.hpp"
#include "runtime/jit.hpp"

namespace sagejit::bench {

inline void fill_random_f16(CUdeviceptr ptr, std::size_t count, unsigned seed, CUstream stream) {
  static const GeneratedUnit unit{"bench.fill_random_f16", Arch{}, R"(
extern "C" __global__ void fill_random_f16(unsigned short* out, unsigned long long n, unsigned seed) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    unsigned h = (unsigned)i * 0x9E3779B1u ^ (unsigned)(i >> 32) * 0x85EBCA77u ^ seed * 0xC2B2AE3Du;
    h ^= h >> 15; h *= 0x2C1B3C6Du; h ^= h >> 12; h *= 0x297A2D39u; h ^= h >> 15;
    float x = (h >> 8) * (4.0f / 16777216.0f) - 2.0f;
    unsigned short bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(x));
    out[i] = bits;
  }
})",
                                        "&fill_random_f16"};
  GeneratedUnit u = unit;
  u.arch = query_device(current_device_ordinal()).arch();
  const Kernel& k = default_jit().kernel(u);
  unsigned long long n = count;
  void* args[] = {&ptr, &n, &seed};
  k.launch({{1024, 1, 1}, {256, 1, 1}, 0}, stream, args);
}

}  // namespace sagejit::bench
