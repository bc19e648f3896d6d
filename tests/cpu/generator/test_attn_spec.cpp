// Tests of generator/attn_spec: canonical names and hashes (stable and distinct), every validation
// rule's message, the generated unit, and default tiles that fit every arch.
#include <doctest/doctest.h>

#include <set>

#include "generator/attn_spec.hpp"
#include "runtime/error.hpp"
#include "templates/attn_params.cuh"

using namespace sagejit;

namespace {

AttnSpec spec_on(std::string_view arch) {
  AttnSpec s;
  s.arch = parse_arch(arch);
  return s;
}

}  // namespace

TEST_CASE("attn spec: canonical names are readable and stable") {
  AttnSpec s = spec_on("sm_89");
  s.head_dim = 128;
  s.quant = {QuantType::int8, layout::Granularity::per_thread, PvType::fp8_e4m3, false};
  s.mask = Mask::causal_top_left;
  s.out = {DType::f16, true};
  s.tile = {128, 64, 4, 2};
  CHECK(s.canonical_name() == "attn.mma.d128.int8.per_thread.fp8.causal.f16.lse.sm_89.t128x64w4s2");
  // FNV-1a of the name, pinned: a change (which orphans every cached kernel) must be deliberate.
  CHECK(s.hash() == 0xac94dbf6ff03daa4ull);

  AttnSpec t = spec_on("sm_86");
  t.head_dim = 64;
  t.quant = {QuantType::int4, layout::Granularity::per_block, PvType::f16, true};
  t.mask = Mask::causal_bottom_right;
  t.out = {DType::bf16, false};
  t.tile = {128, 64, 4, 2, 2};
  CHECK(t.canonical_name() == "attn.mma.d64.int4.per_block.smooth_q.f16.causal_br.bf16.sm_86.t128x64w4s2c2");
}

TEST_CASE("attn spec: the mask, P·V and granularity enums print and parse their names") {
  for (Mask m : {Mask::none, Mask::causal_top_left, Mask::causal_bottom_right}) CHECK(parse_mask(name(m)) == m);
  for (PvType p : {PvType::fp8_e4m3, PvType::f16}) CHECK(parse_pv_type(name(p)) == p);
  for (auto g : {layout::Granularity::per_thread, layout::Granularity::per_warp, layout::Granularity::per_block}) {
    CHECK(parse_granularity(name(g)) == g);
  }
  CHECK(parse_mask("CAUSAL_BR") == Mask::causal_bottom_right);
  CHECK_THROWS_WITH_AS(parse_mask("causal_tl", "--mask"),
                       "argument `--mask`: must be one of none, causal, causal_br (got 'causal_tl')", InvalidArgument);
  CHECK_THROWS_WITH_AS(parse_pv_type("e4m3", "--pv"), "argument `--pv`: must be one of fp8, f16 (got 'e4m3')",
                       InvalidArgument);
}

TEST_CASE("attn spec: every full and representative spec is valid and distinct, across all archs") {
  std::set<std::string> names;
  std::set<std::uint64_t> hashes;
  std::size_t total = 0;
  std::size_t representative_total = 0;
  for (const Arch& arch : supported_archs()) {
    CAPTURE(arch.name());
    for (const AttnSpec& s : full_attn_specs(arch)) {
      CHECK_NOTHROW(s.validate());
      names.insert(s.canonical_name());
      hashes.insert(s.hash());
      ++total;
    }
    std::set<std::string> representative;
    for (const AttnSpec& s : representative_attn_specs(arch)) {
      CAPTURE(s.canonical_name());
      CHECK_NOTHROW(s.validate());
      representative.insert(s.canonical_name());
      if (s.family == AttnFamily::wgmma) {
        CHECK(arch.number() == 90);
        continue;
      }
      // Drawn from the full matrix, except sm_90a's one emulated int4 kernel, which only CI compiles.
      if (!(s.quant.qk == QuantType::int4 && arch.int4_emulated())) CHECK(names.count(s.canonical_name()) == 1);
      // FP8 mma.sync is emulated on sm_90a: CI does not spend time on it.
      if (arch.number() == 90) CHECK(s.quant.pv == PvType::f16);
    }
    CHECK(representative.size() == representative_attn_specs(arch).size());
    CHECK(representative.size() <= 40);
    representative_total += representative.size();
  }
  CHECK(names.size() == total);
  CHECK(hashes.size() == total);
  CHECK(representative_total <= 150);
  // (D, Q/K type) pairs x 3 granularities x smooth_q x P·V types x 3 masks x 2 dtypes x LSE:
  // int4 adds D = 64, 128, 256 on sm_80/86/89; fp8 P·V exists from sm_89; int8x2 adds every D with
  // f16 P·V only.
  CHECK(full_attn_specs(parse_arch("sm_80")).size() == (7 + 4) * 3 * 2 * 1 * 3 * 2 * 2);
  CHECK(full_attn_specs(parse_arch("sm_89")).size() == (7 * 2 + 4) * 3 * 2 * 3 * 2 * 2);
  CHECK(full_attn_specs(parse_arch("sm_90a")).size() == (4 * 2 + 4) * 3 * 2 * 3 * 2 * 2);
  CHECK(full_attn_specs(parse_arch("sm_120")).size() == (4 * 2 + 4) * 3 * 2 * 3 * 2 * 2);
}

TEST_CASE("attn spec: the representative matrix covers every option the template branches on") {
  for (const Arch& arch : supported_archs()) {
    CAPTURE(arch.name());
    std::set<int> dims;
    std::set<Mask> masks;
    std::set<PvType> pvs;
    std::set<layout::Granularity> grans;
    bool bf16 = false, lse = false, no_lse = false, smooth = false, int4 = false;
    std::set<int> int8x2_dims;
    for (const AttnSpec& s : representative_attn_specs(arch)) {
      if (s.family == AttnFamily::wgmma) continue;  // its own test below
      dims.insert(s.head_dim);
      masks.insert(s.mask);
      pvs.insert(s.quant.pv);
      grans.insert(s.quant.granularity);
      bf16 |= s.out.dtype == DType::bf16;
      lse |= s.out.lse;
      no_lse |= !s.out.lse;
      smooth |= s.quant.smooth_q;
      int4 |= s.quant.qk == QuantType::int4;
      if (s.quant.qk == QuantType::int8x2) int8x2_dims.insert(s.head_dim);
    }
    CHECK(dims.size() == 4);
    CHECK(masks.size() == 3);
    CHECK(grans.size() == 3);
    CHECK(pvs.size() == (arch.number() == 89 || arch.number() == 120 ? 2u : 1u));
    CHECK((bf16 && lse && no_lse && smooth));
    CHECK(int4 == (arch.has_int4_mma() || arch.number() == 90));
    CHECK(int8x2_dims == std::set<int>{64, 128, 256});
  }
}

TEST_CASE("attn spec: int4 is native on sm_80/86/89 and emulated on sm_90a/sm_120: allowed, never by default") {
  for (const char* native : {"sm_80", "sm_86", "sm_89"}) {
    CAPTURE(native);
    CHECK(parse_arch(native).has_int4_mma());
    CHECK_FALSE(parse_arch(native).int4_emulated());
    CHECK(parse_arch(native).runs_int4());
  }
  for (const char* emulating : {"sm_90a", "sm_120"}) {
    CAPTURE(emulating);
    const Arch arch = parse_arch(emulating);
    CHECK_FALSE(arch.has_int4_mma());
    CHECK(arch.int4_emulated());
    CHECK(arch.runs_int4());
    // Allowed as an explicit choice, with every P·V type the arch has...
    AttnSpec s = spec_on(emulating);
    s.quant.qk = QuantType::int4;
    for (PvType pv : {PvType::f16, PvType::fp8_e4m3}) {
      s.quant.pv = pv;
      s.tile = default_tile(arch, s.head_dim, pv, s.quant.qk);
      CHECK_NOTHROW(s.validate());
    }
    // ...but never a default and never in the full matrix (`compile --all` does not grow).
    CHECK(AttnQuant{}.qk == QuantType::int8);
    for (const AttnSpec& f : full_attn_specs(arch)) CHECK(f.quant.qk != QuantType::int4);
  }
  // CI compiles exactly one emulated int4 kernel: sm_90a (the H100 the GPU checks run on), D = 128,
  // f16 P·V; none for sm_120.
  std::vector<AttnSpec> hopper_int4;
  for (const AttnSpec& s : representative_attn_specs(parse_arch("sm_90a"))) {
    if (s.quant.qk == QuantType::int4) hopper_int4.push_back(s);
  }
  REQUIRE(hopper_int4.size() == 1);
  CHECK(hopper_int4[0].canonical_name() == "attn.mma.d128.int4.per_thread.f16.none.f16.sm_90a.t128x64w8s2");
  for (const AttnSpec& s : representative_attn_specs(parse_arch("sm_120"))) CHECK(s.quant.qk != QuantType::int4);
}

TEST_CASE("attn spec: validation names the offending field and the allowed values") {
  // int4 on sm_90a has no tensor cores but is emulated by ptxas: accepted (for correctness checks).
  AttnSpec s = spec_on("sm_90a");
  s.quant.qk = QuantType::int4;
  CHECK_NOTHROW(s.validate());
  s.head_dim = 96;
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `quant.qk`: int4 needs head_dim % 64 == 0 for its k64 MMA steps: 64, 128 or 256 (got "
                       "96)",
                       InvalidArgument);
  s.quant.qk = QuantType::fp8_e4m3;
  CHECK_THROWS_WITH_AS(s.validate(), "argument `quant.qk`: must be int8, int4 or int8x2 (got fp8_e4m3)", InvalidArgument);
  s.quant.qk = QuantType::int8x2;
  s.quant.pv = PvType::fp8_e4m3;
  CHECK_THROWS_WITH_AS(s.validate(),
                       doctest::Contains("argument `quant.qk`: int8x2 (the precise mode's two-term Q Kᵀ) needs f16 P·V"),
                       InvalidArgument);
  s.quant.pv = PvType::f16;
  CHECK_NOTHROW(s.validate());

  s = spec_on("sm_86");
  s.quant.pv = PvType::fp8_e4m3;
  CHECK_THROWS_WITH_AS(s.validate(), "argument `quant.pv`: fp8 P·V needs e4m3 MMA: sm_89 or newer (got sm_86; use f16)",
                       InvalidArgument);
  // FP8 P·V on sm_90a is emulated but allowed as an explicit choice.
  s = spec_on("sm_90a");
  s.quant.pv = PvType::fp8_e4m3;
  CHECK_NOTHROW(s.validate());

  s = spec_on("sm_89");
  s.quant.pv = PvType::fp8_e4m3;
  s.tile.cta_k = 48;
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile.cta_k`: must be a multiple of 32 in [32, 128] with fp8 P·V (got 48)",
                       InvalidArgument);
  s.quant.pv = PvType::f16;
  CHECK_NOTHROW(s.validate());  // f16 P·V steps 16 keys at a time
  s.tile.cta_k = 256;
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile.cta_k`: must be a multiple of 16 in [16, 128] with f16 P·V (got 256)",
                       InvalidArgument);

  s = spec_on("sm_89");
  s.tile = {128, 64, 16, 2};
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile.warps_q`: must be one of 1, 2, 4, 8 for cta_q 128: warp_q = cta_q / warps_q "
                       "must be a multiple of 16 (got 16, warp_q 8)",
                       InvalidArgument);
  s.tile = {96, 64, 4, 2};
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile.warps_q`: must be one of 1, 2, 3, 6 for cta_q 96: warp_q = cta_q / warps_q must "
                       "be a multiple of 16 (got 4, warp_q 24)",
                       InvalidArgument);
  s.tile = {128, 64, 3, 2};
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile.warps_q`: must be one of 1, 2, 4, 8 for cta_q 128: warp_q = cta_q / warps_q "
                       "must be a multiple of 16 (got 3)",
                       InvalidArgument);
  s.tile = {136, 64, 4, 2};
  CHECK_THROWS_WITH_AS(s.validate(), "argument `tile.cta_q`: must be a multiple of 16 in [16, 128] (got 136)",
                       InvalidArgument);
  s.tile = {128, 64, 8, 1};
  CHECK_THROWS_WITH_AS(s.validate(), "argument `tile.stages`: must be 2 to 4 (got 1)", InvalidArgument);
  s.tile = {128, 64, 8, 2, 0};
  CHECK_THROWS_WITH_AS(s.validate(), "argument `tile.min_ctas_per_sm`: must be at least 1 (got 0)", InvalidArgument);
  s.tile = {128, 64, 8, 2, 2};  // 2 x 256 threads and 2 x 71,680 B do not fit a 99 KiB SM
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile.min_ctas_per_sm`: 2 CTAs cannot be resident on one sm_89 SM: 512 threads (at "
                       "most 1536) and 145408 bytes of shared memory (at most 102400)",
                       InvalidArgument);

  // Q smoothing reduces ΔS over threads / cta_k threads per key with xor-shuffles: a power of 2.
  s = spec_on("sm_89");
  s.quant.smooth_q = true;
  s.tile = {96, 32, 3, 2};
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `quant.smooth_q`: needs threads / cta_k = 96 / 32 = 3 threads per key to be a power "
                       "of 2 (change tile.warps_q or tile.cta_k)",
                       InvalidArgument);

  // D = 256 with f16 P·V at cta_k 64 fits sm_80's 163 KiB but not sm_86's 99 KiB.
  s = spec_on("sm_86");
  s.head_dim = 256;
  s.tile = {64, 64, 4, 2};
  CHECK(s.shared_bytes() == 119808);
  CHECK_THROWS_WITH_AS(s.validate(),
                       "argument `tile`: t64x64w4s2 needs 119808 bytes of shared memory (head_dim 256, int8, f16 P·V); "
                       "sm_86 allows 101376 bytes per block: lower cta_k, cta_q or stages",
                       InvalidArgument);
  s.arch = parse_arch("sm_80");
  CHECK_NOTHROW(s.validate());

  s = spec_on("sm_89");
  s.head_dim = 80;
  CHECK_THROWS_WITH_AS(s.validate(), "argument `head_dim`: must be one of 64, 96, 128, 256 (got 80)", InvalidArgument);
  s = spec_on("sm_89");
  s.arch = {9, 0, false};
  CHECK_THROWS_WITH_AS(s.validate(), "argument `arch`: must be one of sm_80, sm_86, sm_89, sm_90a, sm_120 (got sm_90)",
                       InvalidArgument);
}

TEST_CASE("attn spec: the generated unit only includes the template and defines its Config") {
  AttnSpec s = spec_on("sm_89");
  s.quant = {QuantType::int8, layout::Granularity::per_warp, PvType::fp8_e4m3, true};
  s.mask = Mask::causal_bottom_right;
  s.out = {DType::bf16, true};
  s.tile = {128, 64, 4, 2};
  GeneratedUnit u = s.generate();
  CHECK(u.spec_name == s.canonical_name());
  CHECK(u.arch == s.arch);
  CHECK(u.name_expression == "&sagejit::kernels::attention_mma<Config>");
  CHECK(u.source.find("__global__") == std::string::npos);
  CHECK(u.source.find("#include \"attn_mma.cuh\"") != std::string::npos);
  CHECK(u.source.find("struct Config {") != std::string::npos);
  for (const char* member :
       {"static constexpr int head_dim = 128;", "static constexpr int cta_q = 128;", "static constexpr int cta_k = 64;",
        "static constexpr int warps_q = 4;", "static constexpr int stages = 2;",
        "static constexpr int min_ctas_per_sm = 1;", "static constexpr int qk_bits = 8;",
        "static constexpr sagejit::layout::Granularity granularity = "
        "sagejit::layout::Granularity::per_warp;",
        "static constexpr bool pv_fp8 = true;", "static constexpr int mask = 2;",
        "static constexpr bool out_bf16 = true;", "static constexpr bool write_lse = true;",
        "static constexpr bool smooth_q = true;"}) {
    CAPTURE(member);
    CHECK(u.source.find(member) != std::string::npos);
  }
  // An invalid spec generates nothing.
  s.tile.cta_k = 48;
  CHECK_THROWS_AS(s.generate(), InvalidArgument);
}

TEST_CASE("attn spec: default tiles validate on every arch, head dim, P·V type and Q/K type") {
  for (const Arch& arch : supported_archs()) {
    for (int d : supported_head_dims()) {
      for (PvType pv : {PvType::fp8_e4m3, PvType::f16}) {
        if (pv == PvType::fp8_e4m3 && !arch.has_fp8_mma()) continue;
        for (QuantType qk : {QuantType::int8, QuantType::int4}) {
          if (qk == QuantType::int4 && (!arch.runs_int4() || d % 64 != 0)) continue;
          for (bool smooth_q : {false, true}) {
            AttnSpec s;
            s.arch = arch;
            s.head_dim = d;
            s.quant = {qk, layout::Granularity::per_thread, pv, smooth_q};
            s.tile = default_tile(arch, d, pv, s.quant.qk);
            CAPTURE(s.canonical_name());
            CHECK_NOTHROW(s.validate());
          }
        }
      }
    }
  }
  // The measured defaults, and the one place a 99 KiB arch shrinks them.
  CHECK(default_tile(parse_arch("sm_89"), 64, PvType::fp8_e4m3, QuantType::int8) == AttnTile{128, 64, 4, 2});
  CHECK(default_tile(parse_arch("sm_89"), 96, PvType::fp8_e4m3, QuantType::int8) == AttnTile{128, 64, 8, 2});
  CHECK(default_tile(parse_arch("sm_90a"), 128, PvType::f16, QuantType::int8) == AttnTile{128, 128, 8, 4});
  CHECK(default_tile(parse_arch("sm_90a"), 128, PvType::f16, QuantType::int8x2) == AttnTile{128, 64, 8, 2});
  CHECK(default_tile(parse_arch("sm_90a"), 96, PvType::f16, QuantType::int8) == AttnTile{128, 128, 8, 4});
  CHECK(default_tile(parse_arch("sm_90a"), 256, PvType::f16, QuantType::int8) == AttnTile{128, 64, 8, 2});
  CHECK(default_tile(parse_arch("sm_90a"), 256, PvType::fp8_e4m3, QuantType::int8) == AttnTile{64, 64, 4, 2});
  CHECK(default_tile(parse_arch("sm_90a"), 96, PvType::f16, QuantType::int8x2) == AttnTile{128, 64, 8, 2});
  CHECK(default_tile(parse_arch("sm_90a"), 256, PvType::f16, QuantType::int8x2) == AttnTile{128, 64, 8, 2});
  CHECK(default_tile(parse_arch("sm_80"), 128, PvType::f16, QuantType::int8) == AttnTile{128, 64, 8, 2});
  CHECK(default_tile(parse_arch("sm_89"), 256, PvType::fp8_e4m3, QuantType::int8) == AttnTile{64, 64, 4, 2});
  CHECK(default_tile(parse_arch("sm_80"), 256, PvType::f16, QuantType::int8) == AttnTile{64, 64, 4, 2});
  CHECK(default_tile(parse_arch("sm_86"), 256, PvType::f16, QuantType::int8) == AttnTile{64, 32, 4, 2});
  CHECK(default_tile(parse_arch("sm_120"), 256, PvType::f16, QuantType::int8) == AttnTile{64, 32, 4, 2});
  // Emulated int4: sm_90a keeps int8's tiles (no spills); sm_120 at D = 256 spills at cta_k 64.
  CHECK(default_tile(parse_arch("sm_90a"), 64, PvType::f16, QuantType::int4) == AttnTile{128, 64, 4, 2});
  CHECK(default_tile(parse_arch("sm_90a"), 256, PvType::f16, QuantType::int4) == AttnTile{64, 64, 4, 2});
  CHECK(default_tile(parse_arch("sm_120"), 256, PvType::f16, QuantType::int4) == AttnTile{64, 32, 4, 2});
  CHECK(default_tile(parse_arch("sm_120"), 256, PvType::fp8_e4m3, QuantType::int4) == AttnTile{64, 64, 4, 2});
  CHECK(default_pv_type(parse_arch("sm_86")) == PvType::f16);
  CHECK(default_pv_type(parse_arch("sm_89")) == PvType::fp8_e4m3);
  CHECK(default_pv_type(parse_arch("sm_90a")) == PvType::f16);
  CHECK(default_pv_type(parse_arch("sm_120")) == PvType::fp8_e4m3);
  CHECK(default_pv_type(parse_arch("sm_89"), QuantType::int8x2) == PvType::f16);
  CHECK(default_pv_type(parse_arch("sm_89"), QuantType::int8) == PvType::fp8_e4m3);
}

TEST_CASE("attn spec: the sm_90a wgmma family validates only what its kernel implements") {
  AttnSpec w;
  w.family = AttnFamily::wgmma;
  w.arch = parse_arch("sm_90a");
  w.quant.pv = PvType::fp8_e4m3;
  w.tile = wgmma_tile();
  CHECK_NOTHROW(w.validate());
  CHECK(w.canonical_name() == "attn.wgmma.d128.int8.per_thread.fp8.none.f16.sm_90a.t128x128w8s2");
  // Q, K/V ring, ones tile, two v_scale buffers, alignment, and the consumers' O staging where it
  // fits (attn_wgmma_stages_o: 64 rows of 2·D + 16 bytes each)
  constexpr int kOStaging = 2 * 64 * (2 * 128 + 16);
  CHECK(w.shared_bytes() == 2 * 64 * 128 + 2 * 2 * 128 * 128 + 8 * 128 + 2 * 4 * 128 + 1024 + kOStaging);
  CHECK(w.threads() == 384);  // two consumer warpgroups and the producer
  CHECK(w.generate().source.find("static constexpr int consumers = 2;") != std::string::npos);
  AttnSpec one = w;
  one.tile = wgmma_tile(1, 3);
  CHECK(one.canonical_name() == "attn.wgmma.d128.int8.per_thread.fp8.none.f16.sm_90a.t64x128w4s3c2");
  CHECK(one.threads() == 256);
  CHECK_NOTHROW(one.validate());
  one.tile.stages = 4;  // 2 CTAs per SM of 137 KiB do not fit in 228 KiB
  CHECK_THROWS_WITH_AS(one.validate(), doctest::Contains("for 2 CTAs per SM"), InvalidArgument);
  AttnSpec deep = w;
  deep.tile.stages = 5;
  CHECK_THROWS_WITH_AS(deep.validate(), doctest::Contains("argument `tile.stages`: must be 2, 3 or 4 for wgmma, or 1"),
                       InvalidArgument);
  deep.tile.stages = 4;
  CHECK_NOTHROW(deep.validate());
  AttnSpec persistent = w;
  persistent.tile = wgmma_tile(2, 4, true);
  CHECK_NOTHROW(persistent.validate());
  CHECK(persistent.canonical_name() == "attn.wgmma.d128.int8.per_thread.fp8.none.f16.sm_90a.t128x128w8s4p");
  CHECK(persistent.generate().source.find("static constexpr bool persistent = true;") != std::string::npos);
  CHECK(wgmma_tile(1, 3, true).name() == "t64x128w4s3c2p");
  AttnSpec mma_persistent;  // the mma kernel has no persistent schedule
  mma_persistent.tile.persistent = true;
  CHECK_THROWS_WITH_AS(mma_persistent.validate(), doctest::Contains("argument `tile.persistent`"), InvalidArgument);
  CHECK(wgmma_default_tile(64) == wgmma_single_tile(4));
  CHECK(wgmma_default_tile(128) == wgmma_single_tile(3));
  CHECK(wgmma_default_tile(96) == wgmma_single_tile(4));
  CHECK(wgmma_default_tile(96, PvType::f16) == wgmma_single_tile(3));
  CHECK(wgmma_default_tile(64, PvType::f16) == wgmma_single_tile(3));
  CHECK(wgmma_default_tile(128, PvType::f16) == wgmma_tile(2, 3, true));
  AttnSpec single = w;  // the single-warpgroup form: 128 threads, Q + one K + one V block, 3 CTAs per SM
  single.tile = wgmma_single_tile(3);
  CHECK_NOTHROW(single.validate());
  CHECK(single.canonical_name() == "attn.wgmma.d128.int8.per_thread.fp8.none.f16.sm_90a.t64x128w4s1c3");
  CHECK(single.threads() == 128);
  CHECK(single.shared_bytes() == 64 * 128 + 2 * 128 * 128 + 1024 + 1024);
  const GeneratedUnit su = single.generate();
  CHECK(su.source.find("#include \"attn_wgmma_single.cuh\"") != std::string::npos);
  CHECK(su.source.find("static constexpr int min_ctas = 3;") != std::string::npos);
  CHECK(su.name_expression == "&sagejit::kernels::attention_wgmma_single<Config>");
  CHECK(su.source.find("static constexpr bool pv_f16 = false;") != std::string::npos);
  CHECK(su.source.find("static constexpr bool fused_q = false;") != std::string::npos);
  AttnSpec single_fused = single;  // Q quantized by the kernel itself: its own name and Config
  single_fused.quant.fused_q = true;
  CHECK_NOTHROW(single_fused.validate());
  CHECK(single_fused.canonical_name() == "attn.wgmma.d128.int8.per_thread.fused_q.fp8.none.f16.sm_90a.t64x128w4s1c3");
  CHECK(single_fused.hash() != single.hash());
  CHECK(single_fused.generate().source.find("static constexpr bool fused_q = true;") != std::string::npos);
  AttnSpec fused_ws = w;  // the warp-specialized kernel quantizes Q itself with FP8 P·V
  fused_ws.quant.fused_q = true;
  CHECK(can_fuse_q(fused_ws));
  CHECK_NOTHROW(fused_ws.validate());
  CHECK(fused_ws.generate().source.find("static constexpr bool fused_q = true;") != std::string::npos);
  fused_ws.out.lse = true;  // also with an LSE (its K-smoothing correction too)
  CHECK(can_fuse_q(fused_ws));
  CHECK_NOTHROW(fused_ws.validate());
  fused_ws.out.lse = false;
  fused_ws.quant.pv = PvType::f16;  // nor with f16 P·V (measured slower than Q's own pass)
  fused_ws.tile = wgmma_tile(2, 3, true);
  CHECK_THROWS_WITH_AS(fused_ws.validate(), doctest::Contains("argument `quant.fused_q`"), InvalidArgument);
  single_fused.out.lse = true;  // the single form: always, LSE included
  CHECK(can_fuse_q(single_fused));
  CHECK_NOTHROW(single_fused.validate());
  AttnSpec fused_mma;  // the mma family never
  fused_mma.quant.fused_q = true;
  CHECK_THROWS_WITH_AS(fused_mma.validate(), doctest::Contains("argument `quant.fused_q`: needs the wgmma family"),
                       InvalidArgument);
  AttnSpec single_f16 = single;  // f16 P·V: V twice the size, a 2 KiB ones tile, at most 2 CTAs per SM at D = 128
  single_f16.quant.pv = PvType::f16;
  CHECK_THROWS_WITH_AS(single_f16.validate(), doctest::Contains("argument `tile.min_ctas_per_sm`"), InvalidArgument);
  single_f16.tile = wgmma_single_tile(2);
  CHECK_NOTHROW(single_f16.validate());
  CHECK(single_f16.shared_bytes() == 64 * 128 + 3 * 128 * 128 + 2048 + 1024);
  CHECK(single_f16.generate().source.find("static constexpr bool pv_f16 = true;") != std::string::npos);
  AttnSpec bad_single = single;
  bad_single.quant.qk = QuantType::int8x2;
  bad_single.quant.pv = PvType::f16;
  CHECK_THROWS_WITH_AS(bad_single.validate(), doctest::Contains("argument `tile.stages`: 1 (the single-warpgroup"),
                       InvalidArgument);
  AttnSpec single256 = single;  // head dim 256: FP8 P·V only (P·V in four parts), 255 registers: 2 CTAs per SM
  single256.head_dim = 256;
  CHECK_THROWS_WITH_AS(single256.validate(), doctest::Contains("at most 2 CTAs per SM (got 3)"), InvalidArgument);
  single256.tile = wgmma_single_tile(2);
  CHECK_NOTHROW(single256.validate());
  CHECK(single256.shared_bytes() == 64 * 256 + 2 * 128 * 256 + 1024 + 1024);
  single256.quant.pv = PvType::f16;
  CHECK_THROWS_WITH_AS(single256.validate(), doctest::Contains("argument `quant.pv`: the single-warpgroup wgmma kernel at head_dim 256 needs fp8 P·V"),
                       InvalidArgument);
  AttnSpec single96 = single;  // head dim 96: Q/K in three 32-byte boxes, up to 4 CTAs per SM with FP8 P·V
  single96.head_dim = 96;
  CHECK_NOTHROW(single96.validate());
  CHECK(single96.shared_bytes() == 64 * 96 + 2 * 128 * 96 + 1024 + 1024);
  single96.tile = wgmma_single_tile(4);
  CHECK_NOTHROW(single96.validate());
  single96.quant.pv = PvType::f16;  // f16 P·V: at most 3
  CHECK_THROWS_WITH_AS(single96.validate(), doctest::Contains("at most 3 CTAs per SM"), InvalidArgument);
  bad_single = single;
  bad_single.tile.persistent = true;
  CHECK_THROWS_WITH_AS(bad_single.validate(), doctest::Contains("64x128w4s1 with min_ctas_per_sm 2, 3 or 4"),
                       InvalidArgument);
  bad_single.tile = wgmma_single_tile(5);
  CHECK_THROWS_WITH_AS(bad_single.validate(), doctest::Contains("argument `tile`"), InvalidArgument);
  bad_single.tile = wgmma_single_tile(4);  // 128 registers a thread: D = 64 fits, D = 128 would spill
  CHECK_THROWS_WITH_AS(bad_single.validate(), doctest::Contains("argument `tile.min_ctas_per_sm`"), InvalidArgument);
  bad_single.head_dim = 64;
  CHECK_NOTHROW(bad_single.validate());
  bad_single.tile = wgmma_tile(2, 1);  // one stage marks the single form, which has one warpgroup
  CHECK_THROWS_WITH_AS(bad_single.validate(), doctest::Contains("64x128w4s1"), InvalidArgument);
  // The shared-ring form: three warpgroups of one CTA on one K/V ring, 384 threads, one CTA per SM.
  AttnSpec shared = single_fused;
  shared.out.lse = false;
  shared.tile = wgmma_shared_tile();
  CHECK(shared.tile.name() == "t192x128w12s4");
  CHECK(is_wgmma_shared(shared.tile));
  CHECK_FALSE(is_wgmma_single(shared.tile));
  CHECK_FALSE(is_wgmma_shared(wgmma_tile(2, 4, true)));
  CHECK_FALSE(is_wgmma_shared(wgmma_single_tile(3)));
  CHECK(can_fuse_q(shared));
  CHECK_NOTHROW(shared.validate());
  CHECK(shared.canonical_name() == "attn.wgmma.d128.int8.per_thread.fused_q.fp8.none.f16.sm_90a.t192x128w12s4");
  CHECK(shared.threads() == 384);
  // Three Q tiles, four slots of K, V and the ones tile, three O staging tiles of 64 rows × 272 bytes.
  CHECK(shared.shared_bytes() == 3 * 64 * 128 + 4 * (2 * 128 * 128 + 1024) + 3 * 64 * 272 + 1024);
  const GeneratedUnit shu = shared.generate();
  CHECK(shu.name_expression == "&sagejit::kernels::attention_wgmma_single<Config>");
  CHECK(shu.source.find("static constexpr int warpgroups = 3;") != std::string::npos);
  CHECK(shu.source.find("static constexpr int min_ctas = 1;") != std::string::npos);
  CHECK(su.source.find("static constexpr int warpgroups = 1;") != std::string::npos);
  AttnSpec shared_sep = shared;  // Q from the separate pass, an LSE and bf16 output: the same form
  shared_sep.quant.fused_q = false;
  shared_sep.out = {DType::bf16, true};
  CHECK_NOTHROW(shared_sep.validate());
  for (Mask m : {Mask::causal_top_left, Mask::causal_bottom_right}) {  // causal: the same form
    AttnSpec causal_shared = shared_sep;
    causal_shared.mask = m;
    CHECK_NOTHROW(causal_shared.validate());
    CHECK(causal_shared.generate().source.find("static constexpr int warpgroups = 3;") != std::string::npos);
  }
  AttnSpec bad_shared = shared;
  bad_shared.head_dim = 64;
  CHECK_THROWS_WITH_AS(bad_shared.validate(), doctest::Contains("argument `head_dim`: the shared-ring wgmma tile "
                                                                "t192x128w12s4 runs head_dim 128 (got 64)"),
                       InvalidArgument);
  bad_shared = shared;
  bad_shared.quant.pv = PvType::f16;
  CHECK_THROWS_WITH_AS(bad_shared.validate(), doctest::Contains("argument `quant.pv`: the shared-ring wgmma tile "
                                                                "t192x128w12s4 needs int8 Q/K with fp8 P·V"),
                       InvalidArgument);
  bad_shared.quant.qk = QuantType::int8x2;  // the precise mode (Q from its own pass): the Q/K type is named
  bad_shared.quant.fused_q = false;
  CHECK_THROWS_WITH_AS(bad_shared.validate(), doctest::Contains("argument `quant.qk`: the shared-ring"), InvalidArgument);
  bad_shared = shared;
  for (AttnTile t : {wgmma_shared_tile(4), AttnTile{192, 128, 12, 3, 1, false}, AttnTile{192, 128, 12, 4, 1, true},
                     AttnTile{192, 64, 12, 4, 1, false}}) {
    bad_shared.tile = t;
    CHECK_THROWS_WITH_AS(bad_shared.validate(), doctest::Contains("argument `tile`: the shared-ring wgmma form's tile "
                                                                  "is t192x128w12s4"),
                         InvalidArgument);
  }
  const GeneratedUnit u = w.generate();
  CHECK(u.source.find("#include \"attn_wgmma.cuh\"") != std::string::npos);
  CHECK(u.name_expression == "&sagejit::kernels::attention_wgmma<Config>");
  AttnSpec bad = w;
  bad.head_dim = 32;
  CHECK_THROWS_WITH_AS(bad.validate(),
                       doctest::Contains("argument `family`: wgmma needs sm_90a, head_dim 64, 96, 128 or 256"),
                       InvalidArgument);
  AttnSpec fp8_256 = w;  // FP8 P·V at head dim 256: P·V in 64-channel parts; 128-key blocks (2 stages) or 64
  fp8_256.head_dim = 256;
  CHECK_NOTHROW(fp8_256.validate());
  CHECK(wgmma_default_tile(256) == wgmma_single_tile(2));  // the single-warpgroup form
  fp8_256.tile = wgmma_tile(2, 3, true, 128);  // Q and three stages of 128-key K and V blocks: 240 KB
  CHECK_THROWS_WITH_AS(fp8_256.validate(), doctest::Contains("bytes of shared memory per CTA"), InvalidArgument);
  fp8_256.tile = wgmma_tile(2, 3, true, 64);
  CHECK_NOTHROW(fp8_256.validate());
  fp8_256.tile = wgmma_tile(1, 2, true, 128);
  CHECK_THROWS_WITH_AS(fp8_256.validate(), doctest::Contains("needs two consumer warpgroups"), InvalidArgument);
  AttnSpec d256 = w;  // head dim 256: f16 P·V, 64-key blocks, two consumers
  d256.head_dim = 256;
  d256.quant.pv = PvType::f16;
  d256.tile = wgmma_tile(2, 3, true, 64);
  CHECK_NOTHROW(d256.validate());
  CHECK(d256.canonical_name() == "attn.wgmma.d256.int8.per_thread.f16.none.f16.sm_90a.t128x64w8s3p");
  CHECK(d256.generate().source.find("static constexpr int cta_k = 64;") != std::string::npos);
  CHECK(wgmma_default_tile(256, PvType::f16) == d256.tile);
  // No whole O staging tile fits beside its ring: O leaves in parts of 128 channels through a buffer of
  // their own (two consumers × 64 rows × 256 bytes); the precise mode's two stages leave room for parts
  // of 64; FP8 P·V at 256 takes parts of 128 with Q from its own pass and none with fused Q (its
  // consumers stage O in their Q tiles).
  CHECK(d256.shared_bytes() == 2 * 64 * 256 + 3 * (64 * 256 + 2 * 64 * 256) + 2048 + 1024 + 2 * 64 * 2 * 128);
  CHECK(kernels::attn_wgmma_o_part_channels(256, 2, 3, true, 1, 64) == 128);
  CHECK(kernels::attn_wgmma_o_part_channels(256, 2, 2, true, 2, 64) == 64);
  CHECK(kernels::attn_wgmma_o_part_channels(256, 2, 2, false, 1, 128) == 128);
  CHECK(kernels::attn_wgmma_o_part_channels(256, 2, 2, false, 1, 128, /*fused_q=*/true) == 0);
  AttnSpec fp8_256_parts = w;
  fp8_256_parts.head_dim = 256, fp8_256_parts.tile = wgmma_tile(2, 2, true, 128);
  const int fp8_256_ring = 2 * 64 * 256 + 2 * (128 * 256 + 128 * 256) + 1024 + 2 * 4 * 256 + 1024;
  CHECK(fp8_256_parts.shared_bytes() == fp8_256_ring + 2 * 64 * 2 * 128);
  fp8_256_parts.quant.fused_q = true;
  CHECK(fp8_256_parts.shared_bytes() == fp8_256_ring);
  CHECK(kernels::attn_wgmma_o_part_channels(128, 2, 2, false, 1, 128) == 0);  // the whole tile fits
  CHECK(kernels::attn_wgmma_o_part_channels(128, 2, 4, true, 1, 128) == 0);   // nothing fits
  d256.tile = wgmma_tile(2, 3, true);
  CHECK_THROWS_WITH_AS(d256.validate(), doctest::Contains("argument `tile.cta_k`: must be 64 for wgmma at head_dim 256 "
                                                          "with 16-bit P·V"), InvalidArgument);
  d256.tile = wgmma_tile(1, 2, true, 64);
  CHECK_THROWS_WITH_AS(d256.validate(), doctest::Contains("needs two consumer warpgroups"), InvalidArgument);
  AttnSpec k64 = w;  // 64-key blocks at the other head dims
  k64.tile = wgmma_tile(2, 4, true, 64);
  CHECK_NOTHROW(k64.validate());
  k64.tile.cta_k = 32;
  CHECK_THROWS_WITH_AS(k64.validate(), doctest::Contains("argument `tile`"), InvalidArgument);
  AttnSpec d96 = w;  // head dim 96: three 32B-swizzled Q/K boxes; f16 V in 32-channel 64B boxes
  d96.head_dim = 96;
  CHECK_NOTHROW(d96.validate());
  d96.quant.pv = PvType::f16;
  CHECK_NOTHROW(d96.validate());
  d96.quant.qk = QuantType::int8x2;
  d96.tile = wgmma_default_tile(96, PvType::f16, QuantType::int8x2);
  CHECK_NOTHROW(d96.validate());
  bad = w;
  bad.arch = parse_arch("sm_89");
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("argument `family`"), InvalidArgument);
  AttnSpec f16 = w;  // f16 P·V on the caller's V: V blocks of 2 bytes per element, no v_scale buffers
  f16.quant.pv = PvType::f16;
  f16.tile = wgmma_tile(2, 3, true);
  CHECK_NOTHROW(f16.validate());
  CHECK(f16.shared_bytes() == 2 * 64 * 128 + 3 * (128 * 128 + 2 * 128 * 128) + 2048 + 1024 + kOStaging);
  CHECK(f16.generate().source.find("static constexpr bool pv_f16 = true;") != std::string::npos);
  CHECK(w.generate().source.find("static constexpr bool pv_f16 = false;") != std::string::npos);
  f16.tile.stages = 4;  // 4 stages of 48 KiB: 225,280 bytes with the static part, within 227 KiB
  CHECK_NOTHROW(f16.validate());
  CHECK(f16.shared_bytes() == 2 * 64 * 128 + 4 * (128 * 128 + 2 * 128 * 128) + 2048 + 1024);  // no room to stage O
  f16.tile = wgmma_tile(1, 4, true);  // one consumer: 2 CTAs of 4 stages do not fit
  CHECK_THROWS_WITH_AS(f16.validate(), doctest::Contains("for 2 CTAs per SM"), InvalidArgument);
  AttnSpec x2 = w;  // the precise mode: two-term Q/K doubles the Q tile and the K blocks
  x2.quant.qk = QuantType::int8x2;
  x2.quant.pv = PvType::f16;
  x2.tile = wgmma_tile(2, 2, true);
  CHECK_NOTHROW(x2.validate());
  CHECK(x2.shared_bytes() == 2 * 2 * 64 * 128 + 2 * (2 * 128 * 128 + 2 * 128 * 128) + 2048 + 1024 + kOStaging);
  CHECK(x2.generate().source.find("static constexpr int qk_terms = 2;") != std::string::npos);
  CHECK(wgmma_default_tile(128, PvType::f16, QuantType::int8x2) == wgmma_tile(2, 2, true));
  x2.tile.stages = 3;  // 3 stages of 64 KiB do not fit
  CHECK_THROWS_WITH_AS(x2.validate(), doctest::Contains("bytes of shared memory per CTA"), InvalidArgument);
  bad = w;
  bad.quant.qk = QuantType::int8x2;  // two terms with FP8 P·V: nothing implements it
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("argument `family`"), InvalidArgument);
  bad = w;
  bad.tile = AttnTile{128, 64, 4, 2};  // 4 warps for 128 rows: not a wgmma tile
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("argument `tile`: the wgmma kernel's tiles are 64x128w4"),
                       InvalidArgument);
  CHECK(wgmma_supports(w));
  w.out.dtype = DType::bf16;  // bf16 output: the epilogue's conversion
  CHECK(wgmma_supports(w));
  CHECK(w.generate().source.find("static constexpr bool out_bf16 = true;") != std::string::npos);
  w.quant.smooth_q = true;
  CHECK_FALSE(wgmma_supports(w));
}
