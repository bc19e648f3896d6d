// support.hpp — what the GPU tests share: the skip decorator, device buffers, random host data.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "reference/quant_reference.hpp"
#include "runtime/device.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "sagejit/attention.hpp"

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

// Random fp16 or bf16 bits: normal values plus bias · ((i % period) % 7 − 3), a per-channel offset
// when period is the head dim (what K smoothing removes); with outlier_every > 0, every
// outlier_every-th value times 12.
inline std::vector<std::uint16_t> random_half_bits(std::size_t n, int period, DType dtype, float bias,
                                                   std::uint32_t seed, std::size_t outlier_every = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::uint16_t> bits(n);
  for (std::size_t i = 0; i < n; ++i) {
    float x = normal(rng) + bias * static_cast<float>(static_cast<int>(i % period) % 7 - 3);
    if (outlier_every > 0 && i % outlier_every == 0) x *= 12.0f;
    bits[i] = dtype == DType::bf16 ? reference::float_to_bf16(x) : reference::float_to_f16(x);
  }
  return bits;
}

// What one attention call gave: the spec it ran, the output's bits and the LSE (empty without one).
struct AttnOutputs {
  AttnSpec spec;
  std::vector<std::uint16_t> out;
  std::vector<float> lse;
};

// One attention call, waited for; returns the spec it ran. With cu_q and cu_k (host prefix sums of
// the sequence lengths, batch + 1 entries each) it is attention_varlen over them, max_q and max_kv
// the longest lengths; empty, attention.
inline AttnSpec run_attention_sync(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& o,
                                   float* lse, const AttentionOptions& opt, const std::vector<int>& cu_q = {},
                                   const std::vector<int>& cu_k = {}, int max_q = 0, int max_kv = 0) {
  AttnSpec spec;
  if (cu_q.empty()) {
    spec = attention_spec(q, k, v, o, lse, opt);
    attention(q, k, v, o, lse, opt, nullptr);
    SAGEJIT_CU(cuCtxSynchronize);
  } else {
    DeviceBuffer dq(cu_q.size() * 4), dk(cu_k.size() * 4);
    dq.upload(cu_q), dk.upload(cu_k);
    VarlenBatch vb;
    vb.batch = static_cast<std::int64_t>(cu_q.size()) - 1;
    vb.cu_seqlens_q = cu_q.data(), vb.cu_seqlens_k = cu_k.data();
    vb.cu_seqlens_q_device = static_cast<const std::int32_t*>(dq.get());
    vb.cu_seqlens_k_device = static_cast<const std::int32_t*>(dk.get());
    vb.max_seqlen_q = max_q, vb.max_seqlen_k = max_kv;
    spec = attention_varlen_spec(q, k, v, o, lse, vb, opt);
    attention_varlen(q, k, v, o, lse, vb, opt, nullptr);
    SAGEJIT_CU(cuCtxSynchronize);  // (before dq and dk go)
  }
  return spec;
}

}  // namespace sagejit::test
