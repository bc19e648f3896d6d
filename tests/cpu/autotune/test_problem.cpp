// Tests of autotune/problem: sequence buckets, bucket names and keys, the default and forced specs,
// and the variant names tuning records carry.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "autotune/policy.hpp"
#include "autotune/problem.hpp"
#include "runtime/error.hpp"

using namespace sagejit;

namespace {

Problem problem(const char* arch, std::int64_t sq, std::int64_t skv) {
  Problem p;
  p.arch = parse_arch(arch);
  p.batch = 4, p.heads_q = 32, p.heads_kv = 8, p.seq_q = sq, p.seq_kv = skv, p.head_dim = 128;
  p.mask = Mask::causal_top_left;
  return p;
}

}  // namespace

TEST_CASE("sequence lengths bucket up to powers of two") {
  CHECK(seq_bucket(0) == 0);
  CHECK(seq_bucket(1) == 1);
  CHECK(seq_bucket(3) == 4);
  CHECK(seq_bucket(1000) == 1024);
  CHECK(seq_bucket(1024) == 1024);
  CHECK(seq_bucket(1025) == 2048);
  CHECK(seq_bucket(32768) == 32768);
}

TEST_CASE("the bucket names every field of the problem that changes the kernel, and nearby shapes share it") {
  const Problem p = problem("sm_89", 1000, 3000);
  CHECK(bucket_name(p) == "d128.int8.per_thread.fp8.causal.f16.gqa4.sq1024.skv4096");
  Problem near = problem("sm_89", 600, 2100);
  near.batch = 1;  // batch and absolute head counts do not enter the bucket
  near.heads_q = 8, near.heads_kv = 2;
  CHECK(bucket_name(near) == bucket_name(p));
  CHECK(bucket_key(near) == bucket_key(p));

  std::vector<Problem> others;
  auto vary = [&](auto change) {
    Problem q = p;
    change(q);
    others.push_back(q);
  };
  vary([](Problem& q) { q.head_dim = 64; });
  vary([](Problem& q) { q.mask = Mask::none; });
  vary([](Problem& q) { q.dtype = DType::bf16; });
  vary([](Problem& q) { q.pv = PvType::f16; });
  vary([](Problem& q) { q.qk = QuantType::int4; });
  vary([](Problem& q) { q.heads_kv = 32; });  // GQA 1
  vary([](Problem& q) { q.seq_q = 1025; });
  vary([](Problem& q) { q.seq_kv = 5000; });
  vary([](Problem& q) { q.lse = true; });
  vary([](Problem& q) { q.smooth_q = true; });
  vary([](Problem& q) { q.granularity = layout::Granularity::per_warp; });
  vary([](Problem& q) { q.varlen = true; });
  for (const Problem& q : others) {
    CAPTURE(bucket_name(q));
    CHECK(bucket_name(q) != bucket_name(p));
    CHECK(bucket_key(q) != bucket_key(p));
  }
  // The name and the integer key agree on every pair.
  others.push_back(p);
  others.push_back(near);
  for (const Problem& a : others) {
    for (const Problem& b : others) CHECK((bucket_name(a) == bucket_name(b)) == (bucket_key(a) == bucket_key(b)));
  }
}

TEST_CASE("visible_pairs: the pairs a mask leaves visible, as a row-by-row count") {
  for (Mask m : {Mask::none, Mask::causal_top_left, Mask::causal_bottom_right}) {
    for (auto [sq, skv] : {std::pair{1, 1}, std::pair{7, 7}, std::pair{5, 13}, std::pair{13, 5}, std::pair{300, 1000},
                           std::pair{1000, 300}}) {
      Problem p = problem("sm_90a", sq, skv);
      p.batch = 2, p.heads_q = 3, p.mask = m;
      const std::int64_t diag = m == Mask::causal_bottom_right ? skv - sq : 0;
      std::int64_t want = 0;
      for (std::int64_t r = 0; r < sq; ++r) want += m == Mask::none ? skv : std::clamp<std::int64_t>(r + 1 + diag, 0, skv);
      CAPTURE(sq);
      CAPTURE(skv);
      CHECK(visible_pairs(p) == 6 * want);
    }
  }
  Problem big = problem("sm_90a", 1 << 20, 1 << 20);  // 2⁴⁷ pairs: no overflow
  big.mask = Mask::none;
  CHECK(visible_pairs(big) == (std::int64_t{128} << 40));
}

TEST_CASE("the heuristic default: wgmma on sm_90a where it supports the problem, else mma with the default tile") {
  Problem p = problem("sm_90a", 4096, 4096);
  CHECK(default_spec(p).family == AttnFamily::wgmma);
  CHECK(default_spec(p).quant.pv == PvType::fp8_e4m3);
  CHECK(default_spec(p).tile == wgmma_single_tile(3));  // causal: about 2³⁰ visible pairs
  CHECK(default_spec(p).quant.fused_q);  // the single form quantizes Q itself
  CHECK(bucket_name(p).find(".fp8.") != std::string::npos);
  p.varlen = true;
  CHECK(default_spec(p).family == AttnFamily::wgmma);
  p.varlen = false;
  // Without a mask, at D = 128 from 2k queries, 4k keys and 2³¹ query-key pairs: the shared-ring form
  // (Q quantized in it too). B4 H32 4k × 4k is 2³¹ pairs.
  p.mask = Mask::none;
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  CHECK(default_spec(p).quant.fused_q);
  CHECK_NOTHROW(default_spec(p).validate());
  p.varlen = true;  // packed batches keep the single form (short sequences would idle warpgroups)
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.varlen = false;
  for (auto [sq, skv] : {std::pair{2048, 8192}, std::pair{4096, 65536}, std::pair{65536, 4096}}) {
    p.seq_q = sq, p.seq_kv = skv;
    CHECK(default_spec(p).tile == wgmma_shared_tile());
  }
  // Each guard alone: fewer queries or keys with pairs to spare (B4 H32), fewer pairs with queries,
  // keys and wave use to spare.
  for (auto [sq, skv] : {std::pair{2047, 65536}, std::pair{65536, 4095}}) {
    CAPTURE(sq);
    CAPTURE(skv);
    p.seq_q = sq, p.seq_kv = skv;
    CHECK(default_spec(p).tile == wgmma_single_tile(3));
  }
  p.batch = 2, p.seq_q = p.seq_kv = 4096;  // B2 H32 4k: 2³⁰ pairs, 1408 CTAs
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.seq_kv = 8192;  // 2³¹
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.batch = 4, p.seq_q = p.seq_kv = 8192;
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.head_dim = 64;  // nor other head dims
  CHECK(default_spec(p).tile == wgmma_single_tile(4));
  p.head_dim = 128;
  p.pv = PvType::f16;  // nor 16-bit P·V
  CHECK(default_spec(p).tile == wgmma_tile(2, 3, true));
  p.pv.reset();
  for (Mask m : {Mask::causal_top_left, Mask::causal_bottom_right}) {  // causal: the visible pairs count
    p.mask = m;
    p.seq_q = p.seq_kv = 8192;  // B4 H32 8k: about 2³² visible
    CHECK(default_spec(p).tile == wgmma_shared_tile());
    CHECK_NOTHROW(default_spec(p).validate());
    p.seq_q = p.seq_kv = 4096;  // about 2³⁰ visible (2³¹ without a mask: above)
    CHECK(default_spec(p).tile == wgmma_single_tile(3));
  }
  // Causal with Sq ≠ Skv: top-left 2k queries against 16k keys see at most 2k keys a row (about 2²⁸
  // pairs), bottom-right 16k queries against 4k keys leave 12k rows without a key (about 2³⁰).
  p.mask = Mask::causal_top_left, p.seq_q = 2048, p.seq_kv = 16384;
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.mask = Mask::causal_bottom_right;  // bottom-right the same shape sees 14k-16k keys a row
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.seq_q = 16384, p.seq_kv = 4096;
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.mask = Mask::none;
  p.seq_q = p.seq_kv = 8192;
  // Nor where its one-per-SM CTAs (192 query rows each) would use less than kSharedRingMinWaveUse of
  // their waves on p.sm_count SMs (132 when unknown), with pairs to spare; however few they are.
  p.batch = 1, p.heads_q = p.heads_kv = 8, p.seq_q = p.seq_kv = 16384;  // 688 CTAs: 5.21 of 6 waves, 2³¹ pairs
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.heads_q = p.heads_kv = 11;  // 946 CTAs: 7.17 of 8 waves, use 0.896 (the shared form measured +2…3%)
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.heads_q = p.heads_kv = 12;  // 1032 CTAs: 7.82 of 8 waves
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.sm_count = 114;  // 9.05 of 10 waves: use 0.905
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.sm_count = 146;  // 7.07 of 8 waves: use 0.884
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.sm_count = 132;
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.sm_count = -5;  // not a count: as unknown (132)
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.sm_count = 0;
  p.heads_q = p.heads_kv = 1, p.seq_q = p.seq_kv = 49152;  // 256 CTAs: 1.94 of 2 waves
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  p.heads_q = p.heads_kv = 2, p.seq_q = p.seq_kv = 32768;  // 342 CTAs: 2.59 of 3 waves
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  {
    Problem edge = p;  // just under the cut: B2 H32 2k × 16k, 704 CTAs, use 0.889 (measured level), 2³¹ pairs
    edge.batch = 2, edge.heads_q = edge.heads_kv = 32, edge.seq_q = 2048, edge.seq_kv = 16384;
    CHECK(wave_use(704, 132) < kSharedRingMinWaveUse);
    CHECK(default_spec(edge).tile == wgmma_single_tile(3));
    edge.sm_count = 128;  // 5.5 of 6 waves: use 0.917
    CHECK(default_spec(edge).tile == wgmma_shared_tile());
  }
  // An offline export (SM count unknown) holds both forms where the wave rule decides, else one.
  const std::vector<AttnSpec> both = default_specs_any_device(p);
  REQUIRE(both.size() == 2);
  CHECK(both[0].tile == wgmma_shared_tile());
  CHECK(both[1].tile == wgmma_single_tile(3));
  p.heads_q = p.heads_kv = 32;  // 5472 CTAs: 41.5 of 42 waves, yet 1 SM or very many SMs decide
  CHECK(default_specs_any_device(p).size() == 2);
  // Causal CTAs run longest first: no wave rule. B1 H4 32k (684 CTAs, 5.18 of 6 waves, 2³¹ visible
  // pairs) takes the shared form causal, the single form without a mask; an export holds one form.
  p.heads_q = p.heads_kv = 4, p.seq_q = p.seq_kv = 32768;
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.mask = Mask::causal_top_left;
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  REQUIRE(default_specs_any_device(p).size() == 1);
  CHECK(default_specs_any_device(p)[0].tile == wgmma_shared_tile());
  p.mask = Mask::causal_bottom_right;  // Skv = Sq: the same rows as top-left
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  // Bottom-right with Skv well above Sq: CTAs of nearly one length keep the rule. B1 H28 2k × 40k:
  // 308 CTAs (2.33 of 3 waves), about 2.29·10⁹ visible pairs.
  p.heads_q = p.heads_kv = 28, p.seq_q = 2048, p.seq_kv = 40960;
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.sm_count = 1;  // every wave full
  CHECK(default_spec(p).tile == wgmma_shared_tile());
  CHECK(default_specs_any_device(p).size() == 2);
  p.sm_count = 0, p.heads_q = p.heads_kv = 4;
  p.mask = Mask::none;
  p.seq_q = p.seq_kv = 1024;  // 2²² pairs: the single form on any device, up to 1k keys at 2 CTAs per SM
  REQUIRE(default_specs_any_device(p).size() == 1);
  CHECK(default_specs_any_device(p)[0].tile == wgmma_single_tile(2));
  CHECK(default_spec(p).quant.fused_q);
  CHECK_NOTHROW(default_spec(p).validate());
  p.seq_kv = 1025;  // beyond 1k keys: 3
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.seq_kv = 1024, p.lse = true;  // with an LSE the tile would take 170 registers, 2 CTAs per SM: 3
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.lse = false;
  p.seq_kv = 512, p.mask = Mask::causal_top_left;  // causal: 3 (2 measured 5-8% slower at 1k)
  CHECK(default_spec(p).tile == wgmma_single_tile(3));
  p.mask = Mask::none, p.pv = PvType::f16;  // f16 P·V: 2 as well (its own rule)
  CHECK(default_spec(p).tile == wgmma_single_tile(2));
  p.pv.reset(), p.head_dim = 64;  // other head dims keep theirs (D = 64: 4 CTAs per SM)
  CHECK(default_spec(p).tile == wgmma_single_tile(4));
  p.head_dim = 128;
  p = problem("sm_90a", 4096, 4096);
  p.seq_kv = 0;
  CHECK(default_spec(p).family == AttnFamily::mma);
  p = problem("sm_90a", 4096, 4096);
  p.pv = PvType::f16;  // the caller's f16 P·V: the wgmma kernel's f16 form, 3 stages
  CHECK(default_spec(p).family == AttnFamily::wgmma);
  CHECK(default_spec(p).quant.pv == PvType::f16);
  CHECK(default_spec(p).tile == wgmma_tile(2, 3, true));
  CHECK_FALSE(default_spec(p).quant.fused_q);
  CHECK_NOTHROW(default_spec(p).validate());
  p.seq_q = p.seq_kv = 1024;  // up to 1k keys: the single form, which quantizes Q itself
  CHECK(default_spec(p).tile == wgmma_single_tile(2));
  CHECK(default_spec(p).quant.fused_q);
  CHECK_NOTHROW(default_spec(p).validate());
  p.seq_q = p.seq_kv = 4096;
  p.head_dim = 96;  // f16 P·V at head dim 96: wgmma too (32-channel V boxes)
  CHECK(default_spec(p).family == AttnFamily::wgmma);
  CHECK_NOTHROW(default_spec(p).validate());
  const Problem a = problem("sm_80", 100, 100);
  CHECK(default_spec(a).family == AttnFamily::mma);
  CHECK(default_spec(a).quant.pv == PvType::f16);
  default_spec(a).validate();
  // Two-term int8 Q/K: f16 P·V whatever the arch's default (fp8 on sm_89); the wgmma kernel on sm_90a
  // (2 stages at D = 128), the mma kernel elsewhere and for head dims wgmma lacks.
  for (const char* arch : {"sm_89", "sm_90a", "sm_120"}) {
    CAPTURE(arch);
    Problem x = problem(arch, 4096, 4096);
    x.qk = QuantType::int8x2;
    const bool hopper = std::string(arch) == "sm_90a";
    CHECK(default_spec(x).family == (hopper ? AttnFamily::wgmma : AttnFamily::mma));
    CHECK(default_spec(x).quant.pv == PvType::f16);
    CHECK_NOTHROW(default_spec(x).validate());
    if (hopper) CHECK(default_spec(x).tile == wgmma_tile(2, 2, true));
    x.head_dim = 256;  // wgmma with 64-key blocks on sm_90a
    CHECK(default_spec(x).family == (hopper ? AttnFamily::wgmma : AttnFamily::mma));
    CHECK_NOTHROW(default_spec(x).validate());
    x.head_dim = 96;  // the precise mode at head dim 96: wgmma on sm_90a too
    CHECK(default_spec(x).family == (hopper ? AttnFamily::wgmma : AttnFamily::mma));
    CHECK_NOTHROW(default_spec(x).validate());
  }
}

TEST_CASE("a caller's tile alone means mma; wgmma cannot run empty problems and says so naming the family") {
  Problem p = problem("sm_90a", 4096, 4096);
  const AttnTile t{64, 64, 4, 3, 1};
  const AttnSpec s = forced_spec(p, std::nullopt, t);
  CHECK(s.family == AttnFamily::mma);
  CHECK(s.tile == t);
  CHECK(s.quant.pv == PvType::f16);  // mma's default on sm_90a, as before the family option
  CHECK(forced_spec(p, AttnFamily::wgmma, std::nullopt).family == AttnFamily::wgmma);
  p.varlen = true;  // packed batches run on it too
  CHECK(forced_spec(p, AttnFamily::wgmma, std::nullopt).family == AttnFamily::wgmma);
  p.seq_kv = 0;
  CHECK_THROWS_WITH_AS(forced_spec(p, AttnFamily::wgmma, std::nullopt), doctest::Contains("argument `family`"),
                       InvalidArgument);
}

TEST_CASE("variant names parse back, and bad ones are refused naming the argument") {
  for (const AttnTile& t : {AttnTile{128, 64, 8, 2, 1}, AttnTile{64, 128, 4, 3, 2}, AttnTile{32, 32, 2, 4, 1},
                            wgmma_tile(2, 4, true), wgmma_tile(1, 3, true), wgmma_single_tile(3),
                            wgmma_shared_tile()}) {
    CHECK(parse_tile_name(t.name()) == t);
  }
  for (const char* bad : {"", "128x64w8s2", "t128x64w8", "t128x64w8s2c1", "t128x64w8s2x", "t128x64w8s2c2junk",
                          "t128x64w8s2pc2", "t128x64w8s2pp", "p"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(parse_tile_name(bad, "tile_config"), doctest::Contains("argument `tile_config`"),
                         InvalidArgument);
  }
  CHECK(parse_family("mma") == AttnFamily::mma);
  CHECK(parse_family("wgmma") == AttnFamily::wgmma);
  CHECK_THROWS_AS(parse_family("tma"), InvalidArgument);
}

TEST_CASE("wave_use: the share of its waves a launch of one CTA per SM keeps busy") {
  CHECK(wave_use(264, 132) == 1.0);
  CHECK(wave_use(132, 132) == 1.0);
  CHECK(wave_use(133, 132) == doctest::Approx(133.0 / 264.0));
  CHECK(wave_use(688, 132) == doctest::Approx(688.0 / 792.0));
  CHECK(wave_use(1, 132) == doctest::Approx(1.0 / 132.0));
  CHECK(wave_use(5, 1) == 1.0);
  CHECK(wave_use(23, 25) == doctest::Approx(0.92));
  CHECK(wave_use(3, std::numeric_limits<int>::max()) == 3.0 / static_cast<double>(std::numeric_limits<int>::max()));
  CHECK(wave_use(0, 132) == 0.0);
  CHECK(wave_use(5, 0) == 0.0);
  CHECK(wave_use(5, -1) == 0.0);
}

TEST_CASE("a varlen call is the problem of its longest sequences, not of the packed token count") {
  // 3 sequences packed into 5000 query and 7000 key tokens, the longest 3000 / 4000.
  const TensorRef q = TensorRef::contiguous(nullptr, DType::f16, Layout::nhd, 1, 8, 5000, 128);
  const TensorRef k = TensorRef::contiguous(nullptr, DType::f16, Layout::nhd, 1, 2, 7000, 128);
  VarlenBatch varlen;
  varlen.batch = 3, varlen.max_seqlen_q = 3000, varlen.max_seqlen_k = 4000;
  const Problem p = problem_of(q, k, false, &varlen, AttentionOptions{}, parse_arch("sm_90a"), 0);
  CHECK(p.varlen);
  CHECK(p.batch == 3);
  CHECK(p.seq_q == 3000);
  CHECK(p.seq_kv == 4000);
  CHECK(bucket_name(p).find(".sq4096.skv4096") != std::string::npos);
  const Problem padded = problem_of(q, k, false, nullptr, AttentionOptions{}, parse_arch("sm_90a"), 0);
  CHECK(padded.seq_q == 5000);
  CHECK_FALSE(padded.varlen);
}
