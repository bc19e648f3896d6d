// GPU tests of variable-length packed batches (attention_varlen, quantize_varlen): accuracy against
// the float64 reference per sequence, equality with attending each sequence on its own, the
// quantization bit for bit against the host reference, bad offsets refused before any launch,
// empty batches and zero-length sequences, and a warm call captured in a CUDA graph.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "reference/attention_check.hpp"
#include "reference/quant_check.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "tests/gpu/accuracy_bars.hpp"
#include "tests/gpu/support.hpp"

using namespace sagejit;
using sagejit::test::Bars;
using sagejit::test::bars_for;
using sagejit::DeviceBuffer;

namespace {

// The accuracy bars of accuracy_bars.hpp. They are bars on whole problems; a sequence with few query rows is a small sample
// (a single 64-channel row has 64 elements), whose relative L1 and cosine scatter more around the
// same expected error, so sequences under kSmallSample elements get twice the distance to the ideal.
constexpr std::size_t kSmallSample = 4096;

Bars relaxed(Bars b) { return {1.0 - 2.0 * (1.0 - b.min_cosine), 2.0 * b.max_rel_l1, b.max_lse_error}; }  // LSE: see check_varlen

// Returns whether the wgmma kernel ran.
bool check_varlen(const AttnVarlenCheckCase& c, const AttnVarlenCheckReport& r) {
  MESSAGE(fmt::format("{:<110} cos {:.6f} relL1 {:.5f} rmse {:.2e} lse {:.2e} {}", c.describe(), r.all.cosine,
                      r.all.rel_l1, r.all.rmse, r.all.lse_max_abs_error, r.spec));
  Bars bars = bars_for(c.distribution, r.fp8_pv, c.options.qk, c.options.granularity);
  // The LSE bar is a maximum over rows: a row that sees a handful of keys (a short sequence) carries
  // the quantization error of those few scores unaveraged (measured 0.0303 against 0.03).
  bool any_small = false;
  for (std::size_t b = 0; b < r.sequences.size(); ++b) any_small = any_small || r.rows[b] * c.head_dim < kSmallSample;
  if (any_small) bars.max_lse_error *= 1.5;
  // Varlen runs where the padded problem would: the wgmma kernel on sm_90a for the specs it
  // supports, the portable kernel otherwise.
  const bool wgmma = r.spec.rfind("attn.wgmma.", 0) == 0;
  CHECK((wgmma || r.spec.rfind("attn.mma.", 0) == 0));
  if (current_device_info().arch().number() != 90) CHECK_FALSE(wgmma);
  CHECK(r.all.unwritten == 0);
  CHECK(r.clobbered == 0);
  CHECK(r.all.cosine >= bars.min_cosine);
  CHECK(r.all.rel_l1 <= bars.max_rel_l1);
  if (c.lse) CHECK(r.all.lse_max_abs_error <= bars.max_lse_error);
  for (std::size_t b = 0; b < r.sequences.size(); ++b) {
    const AttnCheckReport& s = r.sequences[b];
    CAPTURE(b);
    CAPTURE(c.lengths_q[b]);
    CAPTURE(c.lengths_kv[b]);
    const Bars sb = r.rows[b] * c.head_dim < kSmallSample ? relaxed(bars) : bars;
    CHECK(s.unwritten == 0);
    CHECK(s.cosine >= sb.min_cosine);
    CHECK(s.rel_l1 <= sb.max_rel_l1);
    if (c.lse) CHECK(s.lse_max_abs_error <= sb.max_lse_error);
  }
  return wgmma;
}

std::vector<AttnVarlenCheckCase> varlen_cases() {
  const Arch arch = current_device_info().arch();
  std::vector<AttnVarlenCheckCase> cases;
  std::uint32_t seed = 9000;
  auto add = [&](AttnVarlenCheckCase c) {
    c.seed = seed++;
    cases.push_back(c);
  };
  // Both P·V modes where the GPU has both (the FP16 mode everywhere).
  std::vector<PvType> pvs = {PvType::f16};
  if (arch.has_fp8_mma()) pvs.push_back(PvType::fp8_e4m3);
  for (PvType pv : pvs) {
    // The mix: 1, 17, 1000, 0 and 4097 tokens, queries and keys paired differently; GQA
    // 2:1, no mask, fp16, packed [total, H, D].
    AttnVarlenCheckCase mixed;
    mixed.heads_q = 4, mixed.heads_kv = 2, mixed.head_dim = 128;
    mixed.lengths_q = {1, 17, 1000, 0, 4097}, mixed.lengths_kv = {1000, 17, 4097, 5, 1};
    mixed.options.pv = pv;
    add(mixed);
    // Causal, top-left aligned, bf16, MQA 8:1, packed [H, total, D]: a query sequence without keys
    // (output 0, LSE -inf) and sequences with fewer keys than queries.
    AttnVarlenCheckCase top_left;
    top_left.dtype = DType::bf16, top_left.layout = Layout::hnd;
    top_left.heads_q = 8, top_left.heads_kv = 1, top_left.head_dim = 64;
    top_left.lengths_q = {1, 17, 300, 0, 700}, top_left.lengths_kv = {1, 40, 129, 9, 0};
    top_left.options.mask = Mask::causal_top_left, top_left.options.pv = pv;
    add(top_left);
    // Causal, bottom-right aligned per sequence: sequence 2 (300 queries, 100 keys) has 200 rows
    // that see no key; sequence 0 one query over 1000 keys. Rows further apart than dense.
    AttnVarlenCheckCase bottom_right;
    bottom_right.row_pad = 8;
    bottom_right.heads_q = 4, bottom_right.heads_kv = 4, bottom_right.head_dim = 128;
    bottom_right.lengths_q = {1, 17, 300, 200, 0}, bottom_right.lengths_kv = {1000, 17, 100, 0, 5};
    bottom_right.options.mask = Mask::causal_bottom_right, bottom_right.options.pv = pv;
    add(bottom_right);
    // D = 96 and 256 (the other head dims), both alignments.
    AttnVarlenCheckCase d96;
    d96.head_dim = 96, d96.heads_q = 4, d96.heads_kv = 2;
    d96.lengths_q = {33, 1, 129, 64}, d96.lengths_kv = {129, 1, 33, 64};
    d96.options.mask = Mask::causal_bottom_right, d96.options.pv = pv;
    add(d96);
    AttnVarlenCheckCase d256 = d96;
    d256.head_dim = 256, d256.dtype = DType::bf16, d256.layout = Layout::hnd;
    d256.options.mask = Mask::causal_top_left;
    add(d256);
  }
  // Q smoothing on keys with a channel bias, per-warp scales, max_seqlen larger than needed.
  AttnVarlenCheckCase smooth;
  smooth.distribution = Distribution::k_bias, smooth.max_slack = 50;
  smooth.heads_q = 4, smooth.heads_kv = 2;
  smooth.lengths_q = {500, 3, 250}, smooth.lengths_kv = {700, 90, 250};
  smooth.options.smooth_q = true, smooth.options.granularity = layout::Granularity::per_warp;
  add(smooth);
  // Outliers (FlashAttention-3's distribution), per-block scales, no LSE.
  AttnVarlenCheckCase outliers;
  outliers.distribution = Distribution::outliers, outliers.lse = false;
  outliers.lengths_q = {400, 129}, outliers.lengths_kv = {129, 400};
  outliers.options.granularity = layout::Granularity::per_block;
  add(outliers);
  if (arch.runs_int4()) {
    AttnVarlenCheckCase int4;
    int4.head_dim = 64, int4.heads_q = 4, int4.heads_kv = 2;
    int4.lengths_q = {300, 17, 0}, int4.lengths_kv = {700, 17, 3};
    int4.options.qk = QuantType::int4, int4.options.pv = PvType::f16, int4.options.mask = Mask::causal_top_left;
    add(int4);
  }
  AttnVarlenCheckCase x2;
  x2.head_dim = 128, x2.heads_q = 4, x2.heads_kv = 2;
  x2.lengths_q = {300, 17, 0, 129}, x2.lengths_kv = {700, 17, 3, 0};
  x2.options.qk = QuantType::int8x2, x2.options.pv = PvType::f16, x2.options.mask = Mask::causal_bottom_right;
  add(x2);
  return cases;
}

// A packed problem on the device with its offsets, for the tests that call the API directly.
struct Packed {
  int B, Hq, Hkv, D;
  std::vector<int> cu_q, cu_k;
  DeviceBuffer q, k, v, cu_q_dev, cu_k_dev;

  Packed(std::vector<int> lengths_q, std::vector<int> lengths_kv, int hq, int hkv, int d)
      : B(static_cast<int>(lengths_q.size())),
        Hq(hq),
        Hkv(hkv),
        D(d),
        cu_q(offsets(lengths_q)),
        cu_k(offsets(lengths_kv)),
        q(std::size_t(cu_q.back()) * hq * d * 2),
        k(std::size_t(cu_k.back()) * hkv * d * 2),
        v(std::size_t(cu_k.back()) * hkv * d * 2),
        cu_q_dev(cu_q.size() * 4),
        cu_k_dev(cu_k.size() * 4) {
    // (Plain normal values: no bias, no outliers.)
    q.upload(test::random_half_bits(std::size_t(cu_q.back()) * hq * d, d, DType::f16, 0.0f, 1));
    k.upload(test::random_half_bits(std::size_t(cu_k.back()) * hkv * d, d, DType::f16, 0.0f, 2));
    v.upload(test::random_half_bits(std::size_t(cu_k.back()) * hkv * d, d, DType::f16, 0.0f, 3));
    cu_q_dev.upload(cu_q), cu_k_dev.upload(cu_k);
  }
  static std::vector<int> offsets(const std::vector<int>& lengths) {
    std::vector<int> cu(lengths.size() + 1, 0);
    std::partial_sum(lengths.begin(), lengths.end(), cu.begin() + 1);
    return cu;
  }
  int len_q(int b) const { return cu_q[b + 1] - cu_q[b]; }
  int len_k(int b) const { return cu_k[b + 1] - cu_k[b]; }
  // Packed [total, H, D] (NHD) views.
  TensorRef view(const DeviceBuffer& buf, int heads, int total) const {
    return TensorRef::contiguous(buf.get(), DType::f16, Layout::nhd, 1, heads, total, D);
  }
  TensorRef qv() const { return view(q, Hq, cu_q.back()); }
  TensorRef kv(const DeviceBuffer& buf) const { return view(buf, Hkv, cu_k.back()); }
  VarlenBatch batch() const {
    VarlenBatch b;
    b.batch = B;
    b.cu_seqlens_q = cu_q.data(), b.cu_seqlens_k = cu_k.data();
    b.cu_seqlens_q_device = static_cast<const std::int32_t*>(cu_q_dev.get());
    b.cu_seqlens_k_device = static_cast<const std::int32_t*>(cu_k_dev.get());
    for (int i = 0; i < B; ++i) {
      b.max_seqlen_q = std::max<std::int64_t>(b.max_seqlen_q, len_q(i));
      b.max_seqlen_k = std::max<std::int64_t>(b.max_seqlen_k, len_k(i));
    }
    return b;
  }
};

}  // namespace

TEST_CASE("attention_varlen matches the float64 reference on every sequence" * test::needs_gpu()) {
  int on_wgmma = 0;
  for (const AttnVarlenCheckCase& c : varlen_cases()) {
    CAPTURE(c.describe());
    on_wgmma += check_varlen(c, run_attention_varlen_check(c));
  }
  if (current_device_info().arch().number() == 90) CHECK(on_wgmma > 0);  // the FP8 cases
}

TEST_CASE("attention_varlen equals attention on each sequence on its own, bit for bit" * test::needs_gpu()) {
  ensure_current_context();
  const Arch arch = current_device_info().arch();
  // Zero-length query and key sequences, fewer keys than queries, several K tiles and Q blocks.
  Packed p({1, 17, 300, 0, 260, 40}, {130, 17, 100, 9, 0, 200}, 4, 2, 128);
  const int total_q = p.cu_q.back();
  const VarlenBatch batch = p.batch();
  std::vector<PvType> pvs = {PvType::f16};
  if (arch.has_fp8_mma()) pvs.push_back(PvType::fp8_e4m3);
  for (PvType pv : pvs) {
    for (Mask mask : {Mask::none, Mask::causal_top_left, Mask::causal_bottom_right}) {
      CAPTURE(name(pv));
      CAPTURE(name(mask));
      AttentionOptions opt;
      opt.pv = pv, opt.mask = mask;
      DeviceBuffer packed_out(std::size_t(total_q) * p.Hq * p.D * 2), alone_out(packed_out.bytes());
      DeviceBuffer packed_lse(std::size_t(total_q) * p.Hq * 4);
      packed_out.poison(), alone_out.poison(), packed_lse.poison();
      const TensorRef out = p.view(packed_out, p.Hq, total_q);
      // The same kernel (family and tile) for both calls. A sequence without queries or keys runs
      // alone where the runtime puts empty problems (the wgmma kernel needs Sq, Skv > 0): its
      // output is defined (zeros, LSE −inf) whichever kernel writes it.
      const AttnSpec spec = attention_varlen_spec(p.qv(), p.kv(p.k), p.kv(p.v), out,
                                                  reinterpret_cast<float*>(packed_lse.get()), batch, opt);
      opt.family = spec.family, opt.tile = spec.tile;
      CAPTURE(spec.canonical_name());
      AttentionOptions empty_opt = opt;
      empty_opt.family.reset(), empty_opt.tile.reset();
      attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), out, reinterpret_cast<float*>(packed_lse.get()), batch, opt,
                       nullptr);
      const std::vector<float> lse_packed = packed_lse.download<float>(std::size_t(total_q) * p.Hq);
      for (int b = 0; b < p.B; ++b) {
        CAPTURE(b);
        // Sequence b alone: batch-1 views into the same packed tensors at its offsets.
        auto slice = [&](const DeviceBuffer& buf, int heads, int begin, int len) {
          TensorRef t = p.view(buf, heads, len);
          t.data = static_cast<const char*>(buf.get()) + std::size_t(begin) * heads * p.D * 2;
          return t;
        };
        DeviceBuffer lse_alone(std::size_t(p.Hq) * std::max(p.len_q(b), 1) * 4);
        lse_alone.poison();
        attention(slice(p.q, p.Hq, p.cu_q[b], p.len_q(b)), slice(p.k, p.Hkv, p.cu_k[b], p.len_k(b)),
                  slice(p.v, p.Hkv, p.cu_k[b], p.len_k(b)), slice(alone_out, p.Hq, p.cu_q[b], p.len_q(b)),
                  reinterpret_cast<float*>(lse_alone.get()),
                  p.len_q(b) == 0 || p.len_k(b) == 0 ? empty_opt : opt, nullptr);
        SAGEJIT_CU(cuCtxSynchronize);
        const std::vector<float> lse = lse_alone.download<float>(std::size_t(p.Hq) * p.len_q(b));
        std::size_t differ = 0;
        for (int h = 0; h < p.Hq; ++h)
          for (int i = 0; i < p.len_q(b); ++i) {
            const float x = lse_packed[std::size_t(h) * total_q + p.cu_q[b] + i];
            const float y = lse[std::size_t(h) * p.len_q(b) + i];
            differ += std::memcmp(&x, &y, 4) != 0;
          }
        CHECK(differ == 0);
      }
      // Every row of the packed output belongs to one sequence: whole buffers compare.
      const auto a = packed_out.download<std::uint16_t>(std::size_t(total_q) * p.Hq * p.D);
      const auto b = alone_out.download<std::uint16_t>(std::size_t(total_q) * p.Hq * p.D);
      std::size_t differ = 0, nan = 0;
      for (std::size_t i = 0; i < a.size(); ++i) {
        differ += a[i] != b[i];
        nan += (a[i] & 0x7c00) == 0x7c00;
      }
      CHECK(differ == 0);
      CHECK(nan == 0);
    }
  }
}

TEST_CASE("quantize_varlen matches the host reference exactly on every sequence" * test::needs_gpu()) {
  for (const QuantCheckCase& c : quant_varlen_check_cases()) {
    CAPTURE(c.describe());
    const QuantCheckReport r = run_quant_check(c);
    CHECK_MESSAGE(r.ok(), r.summary());
  }
}

TEST_CASE("bad varlen input is refused, naming the argument, before anything is launched" * test::needs_gpu()) {
  ensure_current_context();
  Packed p({5, 100, 0}, {7, 64, 3}, 4, 2, 64);
  const int total_q = p.cu_q.back();
  DeviceBuffer o(std::size_t(total_q) * p.Hq * p.D * 2), lse(std::size_t(total_q) * p.Hq * 4);
  o.poison(0xAB), lse.poison(0xAB);
  const TensorRef out = p.view(o, p.Hq, total_q);
  float* lse_ptr = reinterpret_cast<float*>(lse.get());
  auto run = [&](const VarlenBatch& b, const TensorRef& q, const TensorRef& k, const TensorRef& v, float* l) {
    attention_varlen(q, k, v, out, l, b, AttentionOptions{}, nullptr);
  };
  auto error_of = [&](const VarlenBatch& b, const TensorRef& q, const TensorRef& k, float* l = nullptr,
                      const TensorRef* v = nullptr) -> std::string {
    try {
      run(b, q, k, v ? *v : p.kv(p.v), l);
    } catch (const InvalidArgument& e) {
      return e.what();
    }
    return "no error";
  };
  const VarlenBatch good = p.batch();
  std::vector<int> bad_q = p.cu_q;
  VarlenBatch b = good;
  b.cu_seqlens_q = bad_q.data();
  bad_q[0] = 1;
  CHECK(error_of(b, p.qv(), p.kv(p.k)).find("argument `cu_seqlens_q`: must start at 0") != std::string::npos);
  bad_q = p.cu_q;
  bad_q[2] = 2;  // sequence 1 would end before it starts
  CHECK(error_of(b, p.qv(), p.kv(p.k)).find("non-decreasing") != std::string::npos);
  bad_q = p.cu_q;
  bad_q.back() += 1;
  CHECK(error_of(b, p.qv(), p.kv(p.k)).find("must end at q's token count") != std::string::npos);
  b = good;
  b.max_seqlen_k = 63;
  CHECK(error_of(b, p.qv(), p.kv(p.k)).find("argument `max_seqlen_k`") != std::string::npos);
  b = good;
  b.cu_seqlens_k_device = nullptr;
  CHECK(error_of(b, p.qv(), p.kv(p.k)).find("argument `cu_seqlens_k_device`") != std::string::npos);
  TensorRef q2 = p.qv();
  q2.batch = 2;
  CHECK(error_of(good, q2, p.kv(p.k)).find("argument `q`") != std::string::npos);
  // 4 query heads over 3 key/value heads: not grouped-query attention.
  TensorRef k3 = p.kv(p.k), v3 = p.kv(p.v);
  k3.heads = v3.heads = 3;
  k3.stride_s = v3.stride_s = 3 * p.D;
  CHECK(error_of(good, p.qv(), k3, nullptr, &v3).find("argument `k`: query heads (4) must be a multiple") !=
        std::string::npos);
  CHECK(error_of(good, p.qv(), p.kv(p.k), reinterpret_cast<float*>(lse.ptr() + 2)).find("argument `lse`") !=
        std::string::npos);
  SAGEJIT_CU(cuCtxSynchronize);
  std::size_t touched = 0;
  for (unsigned char x : o.download<unsigned char>(o.bytes())) touched += x != 0xAB;
  for (unsigned char x : lse.download<unsigned char>(lse.bytes())) touched += x != 0xAB;
  CHECK(touched == 0);
  // And the good batch does run (so the refusals above were about the broken rule).
  run(good, p.qv(), p.kv(p.k), p.kv(p.v), lse_ptr);
  SAGEJIT_CU(cuCtxSynchronize);
  for (float x : lse.download<float>(std::size_t(total_q) * p.Hq)) CHECK(std::isfinite(x));
}

TEST_CASE("empty varlen batches and zero-length sequences have defined results" * test::needs_gpu()) {
  ensure_current_context();
  const int Hq = 2, D = 64;
  AttentionOptions opt;
  if (current_device_info().arch().has_fp8_mma()) opt.pv = PvType::fp8_e4m3;  // reads v_scale of empty sequences
  SUBCASE("no sequences, or every sequence empty: nothing launched, nothing written") {
    for (const std::vector<int>& lengths : {std::vector<int>{}, std::vector<int>{0, 0, 0}}) {
      CAPTURE(lengths.size());
      Packed p(lengths, lengths, Hq, Hq, D);
      DeviceBuffer o(256);
      o.poison(0xAB);
      attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), p.view(o, Hq, 0), nullptr, p.batch(), opt, nullptr);
      SAGEJIT_CU(cuCtxSynchronize);
      for (unsigned char x : o.download<unsigned char>(256)) REQUIRE(x == 0xAB);
    }
  }
  SUBCASE("queries without any key: output 0, LSE -inf") {
    Packed p({3, 0, 20}, {0, 0, 0}, Hq, Hq, D);
    const int total_q = p.cu_q.back();
    DeviceBuffer o(std::size_t(total_q) * Hq * D * 2), lse(std::size_t(total_q) * Hq * 4);
    o.poison(), lse.poison();
    attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), p.view(o, Hq, total_q), reinterpret_cast<float*>(lse.get()),
                     p.batch(), opt, nullptr);
    SAGEJIT_CU(cuCtxSynchronize);
    for (std::uint16_t x : o.download<std::uint16_t>(std::size_t(total_q) * Hq * D)) REQUIRE((x & 0x7fff) == 0);
    for (float x : lse.download<float>(std::size_t(total_q) * Hq)) REQUIRE((std::isinf(x) && x < 0));
  }
  SUBCASE("one sequence without keys among others") {
    Packed p({16, 16}, {0, 32}, Hq, Hq, D);
    const int total_q = p.cu_q.back();
    DeviceBuffer o(std::size_t(total_q) * Hq * D * 2), lse(std::size_t(total_q) * Hq * 4);
    o.poison(), lse.poison();
    attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), p.view(o, Hq, total_q), reinterpret_cast<float*>(lse.get()),
                     p.batch(), opt, nullptr);
    SAGEJIT_CU(cuCtxSynchronize);
    const auto out = o.download<std::uint16_t>(std::size_t(total_q) * Hq * D);
    const auto l = lse.download<float>(std::size_t(total_q) * Hq);
    for (int i = 0; i < total_q; ++i) {
      for (int h = 0; h < Hq; ++h) {
        const float x = l[std::size_t(h) * total_q + i];
        if (i < 16) {  // sequence 0: no keys
          REQUIRE((std::isinf(x) && x < 0));
          for (int d = 0; d < D; ++d) REQUIRE((out[(std::size_t(i) * Hq + h) * D + d] & 0x7fff) == 0);
        } else {
          REQUIRE(std::isfinite(x));
          for (int d = 0; d < D; ++d) REQUIRE((out[(std::size_t(i) * Hq + h) * D + d] & 0x7c00) != 0x7c00);
        }
      }
    }
  }
}

// A sequence never sees another's values: with f16 P·V the wgmma kernel reads V blocks straight from
// the packed tensor, so a sequence's last block also covers the next sequence's first keys. Those get
// P̃ = 0, but 0·Inf is NaN: the kernel zeroes them first. Sequence 1's V starts with infinities;
// sequence 0 (100 keys: its last block, 128 or 64 keys, holds 28 of sequence 1's) must stay finite.
TEST_CASE("a non-finite V in one sequence does not reach another sequence's output" * test::needs_gpu()) {
  ensure_current_context();
  const int H = 2;
  // Every Q/K and P·V mode (f16 P·V reads the caller's V: the next sequence's first keys sit in the
  // tail of sequence 0's last block), with and without causal masks.
  struct Mode {
    QuantType qk;
    PvType pv;
  };
  for (int D : {64, 96, 128, 256}) {
    for (Mode mode : {Mode{QuantType::int8, PvType::f16}, Mode{QuantType::int8, PvType::fp8_e4m3},
                      Mode{QuantType::int8x2, PvType::f16}}) {
      if (mode.pv == PvType::fp8_e4m3 && !current_device_info().arch().has_fp8_mma()) continue;
      for (Mask mask : {Mask::none, Mask::causal_top_left, Mask::causal_bottom_right}) {
        CAPTURE(D);
        CAPTURE(name(mode.qk));
        CAPTURE(name(mode.pv));
        CAPTURE(name(mask));
        Packed p({100, 100}, {100, 200}, H, H, D);
        std::vector<std::uint16_t> v = p.v.download<std::uint16_t>(std::size_t(p.cu_k.back()) * H * D);
        for (int key = 100; key < 110; ++key) {
          for (int i = 0; i < H * D; ++i) v[std::size_t(key) * H * D + i] = 0x7c00;  // +inf
        }
        p.v.upload(v);
        AttentionOptions opt;
        opt.qk = mode.qk, opt.pv = mode.pv, opt.mask = mask;
        const int total_q = p.cu_q.back();
        DeviceBuffer o(std::size_t(total_q) * H * D * 2);
        o.poison();
        attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), p.view(o, H, total_q), nullptr, p.batch(), opt, nullptr);
        SAGEJIT_CU(cuCtxSynchronize);
        const auto out = o.download<std::uint16_t>(std::size_t(total_q) * H * D);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < std::size_t(100) * H * D; ++i) bad += (out[i] & 0x7c00) == 0x7c00;
        CHECK(bad == 0);  // sequence 0's rows: all written, all finite
      }
    }
  }
}

TEST_CASE("a warm varlen call is captured in a CUDA graph and replays to the same output" * test::needs_gpu()) {
  ensure_current_context();
  Packed p({100, 0, 333, 7}, {250, 5, 333, 0}, 8, 2, 128);
  const int total_q = p.cu_q.back();
  const VarlenBatch batch = p.batch();
  DeviceBuffer direct(std::size_t(total_q) * p.Hq * p.D * 2), graphed(direct.bytes());
  DeviceBuffer lse(std::size_t(total_q) * p.Hq * 4);
  AttentionOptions opt;
  opt.mask = Mask::causal_bottom_right;
  CUstream stream;
  SAGEJIT_CU(cuStreamCreate, &stream, CU_STREAM_NON_BLOCKING);
  direct.poison(), graphed.poison();
  // Warm-up on the same stream: compiles, loads and sizes this stream's workspace.
  attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), p.view(direct, p.Hq, total_q), reinterpret_cast<float*>(lse.get()),
                   batch, opt, stream);
  test::capture_and_replay(stream, [&] {
    attention_varlen(p.qv(), p.kv(p.k), p.kv(p.v), p.view(graphed, p.Hq, total_q), reinterpret_cast<float*>(lse.get()),
                     batch, opt, stream);
  });
  CHECK(direct.download<std::uint16_t>(std::size_t(total_q) * p.Hq * p.D) ==
        graphed.download<std::uint16_t>(std::size_t(total_q) * p.Hq * p.D));
  driver().cuStreamDestroy(stream);
}
