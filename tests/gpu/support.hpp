// support.hpp — what the GPU tests share: the skip decorator, device buffers, random host data.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"

namespace sagejit::test {

// Decorates every GPU test case: skipped (not passed) when no GPU is visible.
inline auto needs_gpu() { return doctest::skip(!gpu_available()); }

using sagejit::DeviceBuffer;


}  // namespace sagejit::test
