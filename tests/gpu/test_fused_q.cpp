// GPU test of AttentionOptions::fused_q: the single-warpgroup sm_90a kernel quantizes Q itself
// (templates/attn_wgmma_q.cuh) and must give the same bits as Q quantized by its own pass — output
// and LSE (whose K-smoothing correction the kernel then computes too) — across head dims, P·V
// types, masks, GQA, lengths that leave partial tiles, strided (NHD) Q, bf16, varlen, and Q with Inf
// and NaN entries (the kernel's exact fallback). Accuracy
// against float64 is the attention suites' job (they run the fused kernel by default).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <tuple>
#include <vector>

#include "reference/quant_reference.hpp"
#include "runtime/device.hpp"
#include "runtime/quantize_plan.hpp"
#include "runtime/workspace.hpp"
#include "sagejit/attention.hpp"
#include "tests/gpu/support.hpp"

using namespace sagejit;

namespace {

struct FusedCase {
  int head_dim = 128, heads_q = 4, heads_kv = 2, batch = 2, seq_q = 1000, seq_kv = 1000;
  PvType pv = PvType::fp8_e4m3;
  Mask mask = Mask::none;
  DType dtype = DType::f16;
  Layout layout = Layout::hnd;
  bool lse = true, smooth_k = true;
  bool nonfinite_q = false;  // a few Q entries Inf or NaN
  bool expect_fused = true;  // false: the kernel does not quantize Q itself (warp-specialized, f16 P·V)
  std::vector<int> varlen_q, varlen_kv;  // non-empty: attention_varlen over these lengths
  std::optional<AttnTile> wgmma_tile;    // a wgmma tile in place of the default
  std::string describe() const {
    return fmt::format("D={} Hq={} Hkv={} B={} Sq={} Skv={} pv={} mask={} {} {} lse={} smooth_k={}{}{}{}", head_dim,
                       heads_q, heads_kv, batch, seq_q, seq_kv, name(pv), name(mask), name(dtype), name(layout),
                       int(lse), int(smooth_k), varlen_q.empty() ? "" : fmt::format(" varlen({})", varlen_q.size()),
                       nonfinite_q ? " inf/nan in q" : "", wgmma_tile ? " tile " + wgmma_tile->name() : "");
  }
};

// Random values with a per-channel bias in K (what smoothing removes) and a few large entries.
std::vector<std::uint16_t> random_bits(std::size_t n, int head_dim, DType dtype, float bias, std::uint32_t seed) {
  return test::random_half_bits(n, head_dim, dtype, bias, seed, 997);
}

using Outputs = test::AttnOutputs;

Outputs run(const FusedCase& c, bool fused_q) {
  const bool varlen = !c.varlen_q.empty();
  int total_q = c.seq_q, total_kv = c.seq_kv, batch = c.batch;
  std::vector<int> cu_q{0}, cu_k{0};
  if (varlen) {
    for (std::size_t b = 0; b < c.varlen_q.size(); ++b) {
      cu_q.push_back(cu_q.back() + c.varlen_q[b]);
      cu_k.push_back(cu_k.back() + c.varlen_kv[b]);
    }
    total_q = cu_q.back(), total_kv = cu_k.back(), batch = 1;
  }
  const int D = c.head_dim;
  const std::size_t nq = std::size_t(batch) * c.heads_q * total_q * D, nkv = std::size_t(batch) * c.heads_kv * total_kv * D;
  DeviceBuffer q(nq * 2), k(nkv * 2), v(nkv * 2), o(nq * 2), lse(std::size_t(batch) * c.heads_q * total_q * 4);
  std::vector<std::uint16_t> qbits = random_bits(nq, D, c.dtype, 0.0f, 11);
  if (c.nonfinite_q) {  // +Inf, -Inf and NaN in rows of different scale groups and tiles
    const std::uint16_t inf = c.dtype == DType::bf16 ? 0x7f80 : 0x7c00, nan = c.dtype == DType::bf16 ? 0x7fc0 : 0x7e00;
    qbits[5 * D + 3] = inf, qbits[70 * D + 9] = inf | 0x8000, qbits[200 * D + 1] = nan;
  }
  q.upload(qbits);
  k.upload(random_bits(nkv, D, c.dtype, 2.0f, 12));
  v.upload(random_bits(nkv, D, c.dtype, 0.5f, 13));
  o.poison(), lse.poison();
  auto view = [&](const DeviceBuffer& b, int heads, int seq) {
    return TensorRef::contiguous(b.get(), c.dtype, c.layout, batch, heads, seq, D);
  };
  AttentionOptions opt;
  opt.pv = c.pv, opt.mask = c.mask, opt.smooth_k = c.smooth_k, opt.fused_q = fused_q;
  if (c.wgmma_tile) opt.family = AttnFamily::wgmma, opt.tile = c.wgmma_tile;
  float* lse_ptr = c.lse ? static_cast<float*>(lse.get()) : nullptr;
  const TensorRef tq = view(q, c.heads_q, total_q), tk = view(k, c.heads_kv, total_kv),
                  tv = view(v, c.heads_kv, total_kv), to = view(o, c.heads_q, total_q);
  Outputs r;
  r.spec = test::run_attention_sync(tq, tk, tv, to, lse_ptr, opt, varlen ? cu_q : std::vector<int>{}, cu_k, c.seq_q,
                                    c.seq_kv);
  r.out = o.download<std::uint16_t>(nq);
  if (c.lse) r.lse = lse.download<float>(std::size_t(batch) * c.heads_q * total_q);
  return r;
}

// The warp-specialized kernel's tile at D 256 with FP8 P·V (2 stages of 128 keys, persistent; the
// default there before the single form): what the cases that test that kernel's own paths pin.
AttnTile ws256_tile() { return wgmma_tile(2, 2, true, 128); }

void check_fused_equals_separate(const std::vector<FusedCase>& cases) {
  for (const FusedCase& fc : cases) {
    CAPTURE(fc.describe());
    const Outputs fused = run(fc, true), separate = run(fc, false);
    MESSAGE(fmt::format("{}: {} vs {}", fc.describe(), fused.spec.canonical_name(), separate.spec.canonical_name()));
    CHECK(fused.spec.quant.fused_q == fc.expect_fused);
    CHECK_FALSE(separate.spec.quant.fused_q);
    CHECK(fused.spec.tile == separate.spec.tile);
    std::size_t differ = 0, nonfinite = 0;
    for (std::size_t i = 0; i < fused.out.size(); ++i) {
      differ += fused.out[i] != separate.out[i];
      nonfinite += (fused.out[i] & 0x7c00) == 0x7c00 && fc.dtype == DType::f16 && !fc.nonfinite_q;
    }
    CHECK(differ == 0);
    CHECK(nonfinite == 0);
    if (fc.lse) {
      std::size_t lse_differ = 0;
      for (std::size_t i = 0; i < fused.lse.size(); ++i) {
        lse_differ += std::memcmp(&fused.lse[i], &separate.lse[i], 4) != 0;
      }
      CHECK(lse_differ == 0);
    }
  }
}

}  // namespace

TEST_CASE("fused_q: Q quantized inside the single-warpgroup kernel gives the separate pass's bits" *
          test::needs_hopper()) {
  ensure_current_context();
  std::vector<FusedCase> cases;
  cases.push_back({});  // D 128 FP8, GQA, LSE with the K-smoothing correction
  FusedCase c;
  c.head_dim = 64, c.heads_q = 8, c.heads_kv = 8, c.seq_q = 77, c.seq_kv = 300, c.mask = Mask::causal_top_left;
  cases.push_back(c);
  c = {};
  c.head_dim = 96, c.seq_q = 300, c.seq_kv = 1000, c.mask = Mask::causal_bottom_right, c.dtype = DType::bf16;
  c.layout = Layout::nhd;  // Q's rows strided by H·D
  cases.push_back(c);
  c = {};
  c.head_dim = 64, c.pv = PvType::f16, c.mask = Mask::causal_top_left, c.seq_q = 513, c.seq_kv = 513;
  cases.push_back(c);
  c = {};
  c.head_dim = 96, c.pv = PvType::f16, c.dtype = DType::bf16, c.seq_q = 200, c.seq_kv = 129;
  cases.push_back(c);
  c = {};
  c.smooth_k = false, c.seq_q = 130, c.seq_kv = 2000, c.mask = Mask::causal_bottom_right;  // LSE, no correction
  cases.push_back(c);
  c = {};
  c.lse = false, c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 4096, c.seq_kv = 4096;
  cases.push_back(c);
  c = {};
  c.varlen_q = {1, 200, 65, 0, 130}, c.varlen_kv = {3, 200, 1, 50, 257}, c.seq_q = 200, c.seq_kv = 257;
  c.layout = Layout::nhd;
  cases.push_back(c);
  c = {};
  c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 256, c.seq_kv = 16384;  // separate statistics passes
  cases.push_back(c);
  c = {};
  c.nonfinite_q = true, c.seq_q = 300, c.seq_kv = 300;
  cases.push_back(c);
  c.dtype = DType::bf16, c.head_dim = 64;
  cases.push_back(c);
  // D 256 (FP8 P·V) in the single-warpgroup form (its default there, pinned): with an LSE and its
  // K-smoothing correction; bf16 NHD causal; an LSE without K smoothing; varlen with an empty sequence.
  const AttnTile single256 = wgmma_single_tile(2);
  c = {};
  c.head_dim = 256, c.heads_q = 4, c.heads_kv = 1, c.seq_q = 700, c.seq_kv = 900, c.wgmma_tile = single256;
  cases.push_back(c);
  c.dtype = DType::bf16, c.layout = Layout::nhd, c.mask = Mask::causal_bottom_right, c.batch = 1;
  cases.push_back(c);
  c.smooth_k = false;
  cases.push_back(c);
  c = {};
  c.head_dim = 256, c.lse = false, c.heads_q = 4, c.heads_kv = 2, c.mask = Mask::causal_top_left;
  c.varlen_q = {300, 0, 129}, c.varlen_kv = {500, 7, 129}, c.seq_q = 300, c.seq_kv = 500, c.wgmma_tile = single256;
  cases.push_back(c);
  // The warp-specialized kernel (ws256_tile): its consumers quantize Q with FP8 P·V (also bf16 NHD;
  // with an LSE, its K-smoothing correction too); with f16 P·V (D 128 from 2k keys) it keeps the Q pass.
  const AttnTile ws256 = ws256_tile();
  c = {};
  c.head_dim = 256, c.lse = false, c.heads_q = 4, c.heads_kv = 1, c.seq_q = 700, c.seq_kv = 900, c.wgmma_tile = ws256;
  cases.push_back(c);
  // More tiles than CTAs: O leaves through the Q tile the next tile's Q then fills, and the next
  // tile's rows are loaded in the epilogue (attn_wgmma.cuh, kStageOInQ): plain tiles; varlen, whose
  // empty slots (a zero-length and a one-row sequence among long ones) fall between a CTA's tiles;
  // causal pairs past the first (B4 H16 at 1k: 256 pairs); an odd tile count (an empty partner slot).
  c = {};
  c.head_dim = 256, c.lse = false, c.batch = 2, c.heads_q = 8, c.heads_kv = 2, c.seq_q = 2047, c.seq_kv = 1100;
  c.wgmma_tile = ws256;
  cases.push_back(c);
  c = {};
  c.head_dim = 256, c.lse = false, c.heads_q = 16, c.heads_kv = 4, c.layout = Layout::nhd;
  c.varlen_q = {2000, 0, 1, 1500}, c.varlen_kv = {1000, 5, 300, 1200}, c.seq_q = 2000, c.seq_kv = 1200;
  c.wgmma_tile = ws256;
  cases.push_back(c);
  c = {};
  c.head_dim = 256, c.lse = false, c.batch = 4, c.heads_q = 16, c.heads_kv = 16, c.seq_q = 1024, c.seq_kv = 1024;
  c.mask = Mask::causal_top_left, c.wgmma_tile = ws256;
  cases.push_back(c);
  c = {};
  c.head_dim = 256, c.lse = false, c.batch = 2, c.heads_q = 36, c.heads_kv = 4, c.seq_q = 333, c.seq_kv = 333;
  c.mask = Mask::causal_top_left, c.wgmma_tile = ws256;
  cases.push_back(c);
  // The last shape again in bf16, NHD and bottom-right; then with an LSE (the consumers compute its
  // K-smoothing correction); then an LSE without K smoothing (no correction).
  c.dtype = DType::bf16, c.layout = Layout::nhd, c.mask = Mask::causal_bottom_right;
  cases.push_back(c);
  c.lse = true;
  cases.push_back(c);
  c.smooth_k = false;
  cases.push_back(c);
  c = {};
  c.pv = PvType::f16, c.lse = false, c.seq_q = 2100, c.seq_kv = 2100, c.batch = 1, c.mask = Mask::causal_top_left;
  c.expect_fused = false;
  cases.push_back(c);
  check_fused_equals_separate(cases);
}

// The compute-sanitizer set (scripts/sanitize.sh): both fused kernels behind quantize_kv's
// programmatic launch, small enough for racecheck.
TEST_CASE("fused_q: small shapes (the compute-sanitizer set)" * test::needs_hopper()) {
  ensure_current_context();
  std::vector<FusedCase> cases;
  FusedCase c;
  c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 130, c.seq_kv = 200;
  cases.push_back(c);
  c.head_dim = 64, c.pv = PvType::f16, c.mask = Mask::causal_top_left, c.seq_q = 77, c.seq_kv = 77;
  cases.push_back(c);
  c = {};
  c.head_dim = 96, c.dtype = DType::bf16, c.heads_q = 2, c.heads_kv = 2, c.seq_q = 70, c.seq_kv = 140;
  c.varlen_q = {70, 5}, c.varlen_kv = {140, 9}, c.layout = Layout::nhd;
  cases.push_back(c);
  c = {};  // D 256: the single-warpgroup form (its default, pinned), with an LSE
  c.head_dim = 256, c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 130, c.seq_kv = 200;
  c.mask = Mask::causal_top_left, c.wgmma_tile = wgmma_single_tile(2);
  cases.push_back(c);
  c.lse = false, c.wgmma_tile = ws256_tile();  // the warp-specialized kernel's consumers
  cases.push_back(c);
  c = {};  // ... with more tiles (144) than the H100's 132 CTAs: O leaves through the Q tile a next tile refills
  c.head_dim = 256, c.lse = false, c.batch = 1, c.heads_q = 36, c.heads_kv = 4, c.seq_q = 512, c.seq_kv = 100;
  c.wgmma_tile = ws256_tile();
  cases.push_back(c);
  check_fused_equals_separate(cases);
}

// The programmatic launch is taken exactly where quantize_kv is the last kernel on the stream: Q left
// to the attention kernel and the fused statistics chosen (not at S = 16k, where separate passes run
// and a helper stream joins), and only for the attention call (not for a bare quantize()).
TEST_CASE("enqueue_quantize allows a programmatic successor only after quantize_kv alone" * test::needs_hopper()) {
  ensure_current_context();
  for (auto [seq_kv, quantize_q, expect] : {std::tuple{1000, false, true}, {1000, true, false}, {16384, false, false}}) {
    CAPTURE(seq_kv);
    CAPTURE(quantize_q);
    const int H = 2, D = 128, S = 256;
    DeviceBuffer q(std::size_t(H) * S * D * 2), kv(std::size_t(H) * seq_kv * D * 2);
    kv.poison(0x11);
    q.poison(0x11);
    const TensorRef tq = TensorRef::contiguous(q.get(), DType::f16, Layout::hnd, 1, H, S, D);
    const TensorRef tkv = TensorRef::contiguous(kv.get(), DType::f16, Layout::hnd, 1, H, seq_kv, D);
    QuantizeOptions o;
    o.block_q = 64, o.warp_q = 16, o.block_k = 128, o.warp_k = 128;
    o.quantize_q = quantize_q;
    const QuantizePlan plan = plan_quantize(tq, tkv, tkv, o, current_device_info().arch());
    DeviceBuffer ws(plan.workspace_bytes);
    CHECK(enqueue_quantize(plan, tq, tkv, tkv, o, ws.get(), nullptr, true) == expect);
    CHECK_FALSE(enqueue_quantize(plan, tq, tkv, tkv, o, ws.get(), nullptr));  // quantize(): never
    SAGEJIT_CU(cuCtxSynchronize);
  }
}

// Q written by stream-ordered work just before the call (an async copy on a non-blocking stream), the
// call on that stream, then a kernel-only rerun (reuse_quantized, which reads the caller's Q again):
// all give the bits of the plain call.
TEST_CASE("fused_q reads the Q that stream-ordered work just wrote, and again on reuse" * test::needs_hopper()) {
  ensure_current_context();
  const int B = 2, H = 4, S = 1000, D = 128;
  const std::size_t n = std::size_t(B) * H * S * D;
  DeviceBuffer staged(n * 2), q(n * 2), k(n * 2), v(n * 2), plain(n * 2), ordered(n * 2), reused(n * 2);
  staged.upload(random_bits(n, D, DType::f16, 0.0f, 21));
  q.upload(random_bits(n, D, DType::f16, 0.0f, 22));  // the copy below replaces it
  k.upload(random_bits(n, D, DType::f16, 2.0f, 23));
  v.upload(random_bits(n, D, DType::f16, 0.5f, 24));
  auto view = [&](const DeviceBuffer& b) { return TensorRef::contiguous(b.get(), DType::f16, Layout::hnd, B, H, S, D); };
  CUstream stream;
  SAGEJIT_CU(cuStreamCreate, &stream, CU_STREAM_NON_BLOCKING);
  AttentionOptions opt;
  opt.pv = PvType::fp8_e4m3;
  plain.poison(), ordered.poison(), reused.poison();
  attention(view(staged), view(k), view(v), view(plain), nullptr, opt, stream);  // warm-up and reference
  SAGEJIT_CU(cuStreamSynchronize, stream);
  SAGEJIT_CU(cuMemcpyDtoDAsync, reinterpret_cast<CUdeviceptr>(q.get()), reinterpret_cast<CUdeviceptr>(staged.get()),
             n * 2, stream);
  attention(view(q), view(k), view(v), view(ordered), nullptr, opt, stream);
  opt.reuse_quantized = true;
  attention(view(q), view(k), view(v), view(reused), nullptr, opt, stream);
  SAGEJIT_CU(cuStreamSynchronize, stream);
  CHECK(attention_spec(view(q), view(k), view(v), view(ordered), nullptr, opt).quant.fused_q);
  const std::vector<std::uint16_t> want = plain.download<std::uint16_t>(n);
  CHECK(ordered.download<std::uint16_t>(n) == want);
  CHECK(reused.download<std::uint16_t>(n) == want);
  driver().cuStreamDestroy(stream);
}
