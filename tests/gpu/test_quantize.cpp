// GPU tests of the quantization kernels: every output equals the host reference bit for bit, bad
// input launches nothing, and a warm call can be captured in a CUDA graph (so it neither allocates
// nor synchronizes).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "reference/quant_check.hpp"
#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/quantize_plan.hpp"
#include "tests/gpu/support.hpp"

using namespace sagejit;
using sagejit::DeviceBuffer;

TEST_CASE("quantization kernels match the host reference exactly" * test::needs_gpu()) {
  for (const QuantCheckCase& c : quant_check_cases()) {
    CAPTURE(c.describe());
    const QuantCheckReport r = run_quant_check(c);
    CHECK_MESSAGE(r.ok(), r.summary());
  }
}

TEST_CASE("K, V and their statistics run as one kernel wherever it applies" * test::needs_gpu()) {
  ensure_current_context();
  const Arch arch = current_device_info().arch();
  const TensorRef t = TensorRef::contiguous(reinterpret_cast<const void*>(std::uintptr_t{256}), DType::f16, Layout::hnd,
                                            2, 2, 1000, 128);
  QuantizeOptions o;
  o.quantize_v = arch.has_fp8_mma();
  auto fused = [&](const QuantizeOptions& opt) { return runs_fused_stats(plan_quantize(t, t, t, opt, arch), opt); };
  // Its second read of K and V must come from L2: GPUs with 32 MB or more run it at this shape (the
  // H100's 50 MB with room to spare), smaller L2s may not (runtime/quantize.cpp).
  if (current_device_info().l2_bytes >= (32 << 20)) CHECK(fused(o));
  QuantizeOptions off = o;
  off.fused_stats = false;
  CHECK_FALSE(fused(off));
  QuantizeOptions odd_block = o;  // 96 does not divide the 128-token chunk
  odd_block.block_k = 96, odd_block.warp_k = 96;
  CHECK_FALSE(fused(odd_block));
  QuantizeOptions nothing_first = o;  // no statistics: the K kernel alone
  nothing_first.smooth_k = false, nothing_first.quantize_v = false;
  CHECK_FALSE(fused(nothing_first));
  // On sm_90a, up to kv_cluster_max_chunks(D) chunks of keys: its cluster form (quant_kv_cluster.cuh),
  // unless turned off. That is 16 chunks where the GPU holds 16-CTA clusters (the H100 and H200 do;
  // elsewhere, 8 may be the most): 2048 keys are 16 chunks, 2049 are 17; at D = 256 too (2 CTAs per
  // SM there).
  if (has_kv_cluster(arch) && fused(o)) {
    CHECK(runs_kv_cluster(plan_quantize(t, t, t, o, arch), o));
    const TensorRef two_k = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 2, 2, 2048, 128);
    const std::string& name = current_device_info().name;
    const bool h100_or_h200 = name.find("H100") != std::string::npos || name.find("H200") != std::string::npos;
    if (h100_or_h200) {
      CHECK(runs_kv_cluster(plan_quantize(two_k, two_k, two_k, o, arch), o));
    }
    const TensorRef past = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 2, 2, 2049, 128);
    CHECK_FALSE(runs_kv_cluster(plan_quantize(past, past, past, o, arch), o));
    CHECK(runs_fused_stats(plan_quantize(past, past, past, o, arch), o));
    const TensorRef wide = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 2, 2, 1024, 256);
    CHECK(runs_kv_cluster(plan_quantize(wide, wide, wide, o, arch), o));
    const TensorRef wide_two_k = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 2, 2, 2048, 256);
    if (h100_or_h200) {
      CHECK(runs_kv_cluster(plan_quantize(wide_two_k, wide_two_k, wide_two_k, o, arch), o));
    }
    const TensorRef wide_past = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 2, 2, 2049, 256);
    CHECK_FALSE(runs_kv_cluster(plan_quantize(wide_past, wide_past, wide_past, o, arch), o));
    // D = 256 at 4k keys: quantize_kv with one tensor per item, its second reads within half of the
    // H100's and H200's L2.
    const TensorRef wide_4k = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 2, 2, 4096, 256);
    if (h100_or_h200) {
      CHECK(runs_fused_stats(plan_quantize(wide_4k, wide_4k, wide_4k, o, arch), o));
    }
    QuantizeOptions items = o;
    items.kv_cluster = false;
    CHECK_FALSE(runs_kv_cluster(plan_quantize(t, t, t, items, arch), items));
    CHECK(fused(items));
  } else {
    CHECK_FALSE(runs_kv_cluster(plan_quantize(t, t, t, o, arch), o));
  }
  CHECK_FALSE(runs_kv_cluster(plan_quantize(t, t, t, off, arch), off));
  // Far beyond L2 (a (b, h) of 256k keys): the separate passes.
  const TensorRef long_keys = TensorRef::contiguous(t.data, DType::f16, Layout::hnd, 1, 1, 262144, 128);
  CHECK_FALSE(runs_fused_stats(plan_quantize(long_keys, long_keys, long_keys, o, arch), o));
}

TEST_CASE("bad input is rejected before anything is launched or written" * test::needs_gpu()) {
  ensure_current_context();
  const int B = 1, H = 2, S = 64, D = 128;
  DeviceBuffer q(B * H * S * D * 2), k(B * H * S * D * 2), v(B * H * S * D * 2);
  auto view = [&](const DeviceBuffer& b) {
    return TensorRef::contiguous(b.get(), DType::f16, Layout::hnd, B, H, S, D);
  };
  QuantizeOptions o;
  const std::size_t bytes = quantize_workspace_bytes(view(q), view(k), view(v), o);
  DeviceBuffer ws(bytes);
  ws.poison(0xAB);
  CHECK_THROWS_WITH_AS(quantize(view(q), view(k), view(v), o, ws.get(), bytes - 256, nullptr),
                       doctest::Contains("workspace_bytes"), InvalidArgument);
  TensorRef misaligned = view(k);
  misaligned.data = static_cast<const char*>(misaligned.data) + 8;
  CHECK_THROWS_WITH_AS(quantize(view(q), misaligned, view(v), o, ws.get(), bytes, nullptr),
                       doctest::Contains("argument `k`"), InvalidArgument);
  o.block_k = 40;
  CHECK_THROWS_AS(quantize(view(q), view(k), view(v), o, ws.get(), bytes, nullptr), InvalidArgument);
  SAGEJIT_CU(cuCtxSynchronize);
  const auto after = ws.download<unsigned char>(bytes);
  std::size_t touched = 0;
  for (unsigned char b : after) touched += b != 0xAB;
  CHECK(touched == 0);
}

TEST_CASE("a warm quantization call is captured in a CUDA graph and replays to the same result" * test::needs_gpu()) {
  ensure_current_context();
  QuantCheckCase c;
  c.batch = 2, c.heads_q = 4, c.heads_kv = 2, c.seq_q = 200, c.seq_kv = 300, c.head_dim = 64;
  REQUIRE(run_quant_check(c).ok());  // compiles and loads the kernels: the next call is warm
  const int B = 2, H = 4, S = 300, D = 64;
  DeviceBuffer q(B * H * S * D * 2), k(B * H * S * D * 2), v(B * H * S * D * 2);
  std::vector<std::uint16_t> ones(B * H * S * D, 0x3c00);
  q.upload(ones), k.upload(ones), v.upload(ones);
  auto view = [&](const DeviceBuffer& b) { return TensorRef::contiguous(b.get(), DType::f16, Layout::hnd, B, H, S, D); };
  // Both forms of the one K/V kernel where the GPU has both (sm_90a: the cluster form at this length,
  // and quantize_kv's items with its counters cleared in the graph); scripts/sanitize.sh runs this.
  for (bool cluster : {true, false}) {
    CAPTURE(cluster);
    QuantizeOptions o;
    o.kv_cluster = cluster;
    if (!query_device(current_device_ordinal()).arch().has_fp8_mma()) o.quantize_v = false;
    const std::size_t bytes = quantize_workspace_bytes(view(q), view(k), view(v), o);
    DeviceBuffer direct(bytes), graphed(bytes);
    direct.poison(), graphed.poison();
    quantize(view(q), view(k), view(v), o, direct.get(), bytes, nullptr);
    CUstream stream;
    SAGEJIT_CU(cuStreamCreate, &stream, CU_STREAM_NON_BLOCKING);
    test::capture_and_replay(stream, [&] { quantize(view(q), view(k), view(v), o, graphed.get(), bytes, stream); });
    SAGEJIT_CU(cuCtxSynchronize);
    // Padding bytes between buffers stay poisoned in both, so whole workspaces compare equal.
    CHECK(direct.download<unsigned char>(bytes) == graphed.download<unsigned char>(bytes));
    driver().cuStreamDestroy(stream);
  }
}
