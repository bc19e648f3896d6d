// support.hpp — what the GPU tests share: the skip decorator, device buffers, random host data.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/device.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"

namespace sagejit::test {

// Decorates every GPU test case: skipped (not passed) when no GPU is visible.
inline auto needs_gpu() { return doctest::skip(!gpu_available()); }

// For sm_90a-only kernels (wgmma, TMA, setmaxnreg): skipped unless device 0 is a Hopper GPU. One
// decorator checks both, because a second doctest::skip would override the first.
inline bool hopper_available() {
  if (!gpu_available()) return false;
  try {
    const DeviceInfo d = query_device(0);
    return d.cc_major == 9 && d.cc_minor == 0;
  } catch (...) {
    return false;
  }
}
inline auto needs_hopper() { return doctest::skip(!hopper_available()); }

using sagejit::DeviceBuffer;

// Captures `body` (which enqueues work on `stream`) into a CUDA graph, then launches the graph once
// and waits for it. Capture fails if `body` allocates or synchronizes, which is what callers test.
template <class F>
void capture_and_replay(CUstream stream, F&& body) {
  SAGEJIT_CU(cuStreamBeginCapture, stream, CU_STREAM_CAPTURE_MODE_GLOBAL);
  body();
  CUgraph graph;
  SAGEJIT_CU(cuStreamEndCapture, stream, &graph);
  CUgraphExec exec;
  SAGEJIT_CU(cuGraphInstantiate, &exec, graph, 0);
  SAGEJIT_CU(cuGraphLaunch, exec, stream);
  SAGEJIT_CU(cuStreamSynchronize, stream);
  driver().cuGraphExecDestroy(exec);
  driver().cuGraphDestroy(graph);
}


}  // namespace sagejit::test
