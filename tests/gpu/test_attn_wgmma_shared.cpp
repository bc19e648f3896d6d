// GPU tests of the single-warpgroup kernel's shared-ring form (wgmma_shared_tile(): three
// warpgroups of one CTA reading K/V through one ring; templates/attn_wgmma_kv_ring.cuh). It runs the
// single form's numerics block for block, so it must give the single form's bits — output and LSE —
// wherever the ring's bookkeeping could go wrong: CTAs with one, two or three warpgroups active
// (query lengths that are not multiples of 192), fewer blocks than slots, one block, many ring
// cycles, a tail block, GQA, bf16 and NHD, Q quantized apart, varlen batches with empty and one-row
// sequences, causal masks at both alignments (warpgroups that visit fewer blocks than the ring
// carries, CTAs with no block at all). Accuracy against float64 is checked as well, on the distributions of DESIGN.md §3.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "reference/attention_check.hpp"
#include "reference/quant_reference.hpp"
#include "runtime/device.hpp"
#include "sagejit/attention.hpp"
#include "tests/gpu/accuracy_bars.hpp"
#include "tests/gpu/support.hpp"
#include "tests/gpu/wgmma_same_bits.hpp"

using namespace sagejit;
using test::WgmmaCase;

// Small shapes for compute-sanitizer (scripts/sanitize.sh): CTAs of 3, 2 and 1 active warpgroups,
// fewer blocks than slots, a ring cycle, causal at both alignments (warpgroups that follow the ring
// without computing), varlen.
TEST_CASE("attn_wgmma shared-ring form: small shapes" * test::needs_hopper()) {
  ensure_current_context();
  std::vector<WgmmaCase> cases;
  WgmmaCase c;
  c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 320, c.seq_kv = 700;  // CTAs of 3 and 2; 6 blocks
  cases.push_back(c);
  c.mask = Mask::causal_top_left, c.seq_q = 960, c.seq_kv = 960;  // 8 blocks: ring cycles, then the CTA's
  cases.push_back(c);                                                // first rows follow it without computing
  c.seq_q = 320, c.seq_kv = 320;
  cases.push_back(c);
  c.mask = Mask::causal_bottom_right, c.seq_q = 400, c.seq_kv = 300;  // rows without keys
  cases.push_back(c);
  c = {};
  c.mask = Mask::causal_top_left, c.layout = Layout::nhd;
  c.varlen_q = {1, 200, 0, 130}, c.varlen_kv = {3, 200, 50, 300}, c.seq_q = 200, c.seq_kv = 300;
  cases.push_back(c);
  test::check_same_bits(cases, wgmma_shared_tile(), wgmma_single_tile(3));
}

TEST_CASE("attn_wgmma shared-ring form: the single form's bits, output and LSE" * test::needs_hopper()) {
  ensure_current_context();
  std::vector<WgmmaCase> cases;
  cases.push_back({});  // 16 q tiles: 5 CTAs of three warpgroups and one of one; a tail block; GQA
  WgmmaCase c;
  c.batch = 3, c.heads_q = 5, c.heads_kv = 5, c.seq_q = 200, c.seq_kv = 300;  // 4 tiles (3 + 1), 3 blocks < 4 slots
  cases.push_back(c);
  c = {};
  c.batch = 1, c.heads_q = 3, c.heads_kv = 1, c.seq_q = 64, c.seq_kv = 128;  // one warpgroup, one block
  cases.push_back(c);
  c = {};
  c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 4096, c.seq_kv = 4097, c.lse = false;  // 33 blocks, 8+ ring cycles
  cases.push_back(c);
  c = {};
  c.seq_q = 129, c.seq_kv = 1000, c.dtype = DType::bf16, c.layout = Layout::nhd;  // 3 tiles, the last of one row
  cases.push_back(c);
  c = {};
  c.batch = 1, c.heads_q = 2, c.heads_kv = 2, c.seq_q = 384, c.seq_kv = 16384;  // separate statistics passes
  cases.push_back(c);
  c = {};
  c.fused_q = false;  // Q from its own pass: each warpgroup loads its Q tile by TMA
  cases.push_back(c);
  c.dtype = DType::bf16, c.layout = Layout::nhd, c.seq_q = 640, c.seq_kv = 700;
  cases.push_back(c);
  c = {};  // varlen: an empty and a one-row sequence among longer ones, short and long K/V
  c.varlen_q = {1, 200, 65, 0, 700}, c.varlen_kv = {3, 200, 1, 50, 1100}, c.seq_q = 700, c.seq_kv = 1100;
  c.layout = Layout::nhd;
  cases.push_back(c);
  c.fused_q = false;
  cases.push_back(c);
  // Causal: a CTA's warpgroups visit different numbers of blocks (the ring carries its last rows'),
  // and the CTAs go longest first.
  c = {};
  c.mask = Mask::causal_top_left;  // 16 q tiles: CTAs of 3 and one of 1; a tail block
  cases.push_back(c);
  c.seq_q = 320, c.seq_kv = 320, c.batch = 1, c.lse = false;  // 5 tiles: a CTA of 2 (the longest) and one of 3
  cases.push_back(c);
  c = {};
  c.mask = Mask::causal_top_left, c.batch = 1, c.heads_q = 2, c.heads_kv = 1, c.seq_q = 4096, c.seq_kv = 4097;
  cases.push_back(c);  // up to 32 blocks, 8 ring cycles
  c = {};
  c.mask = Mask::causal_bottom_right, c.batch = 3, c.heads_q = 5, c.heads_kv = 5, c.seq_q = 200, c.seq_kv = 1000;
  cases.push_back(c);  // every row sees most keys
  c.seq_q = 1000, c.seq_kv = 300;  // rows 0-699 see no key: warpgroups and whole CTAs with no block
  cases.push_back(c);
  c = {};
  c.mask = Mask::causal_bottom_right, c.fused_q = false, c.dtype = DType::bf16, c.layout = Layout::nhd;
  c.seq_q = 640, c.seq_kv = 700;
  cases.push_back(c);
  c = {};  // varlen causal: per-sequence diagonals, an empty and a one-row sequence
  c.mask = Mask::causal_bottom_right, c.layout = Layout::nhd;
  c.varlen_q = {1, 200, 65, 0, 700}, c.varlen_kv = {3, 200, 1, 50, 1100}, c.seq_q = 700, c.seq_kv = 1100;
  cases.push_back(c);
  c.mask = Mask::causal_top_left;
  cases.push_back(c);
  test::check_same_bits(cases, wgmma_shared_tile(), wgmma_single_tile(3));
}

TEST_CASE("attn_wgmma shared-ring form: matches the float64 reference (FP8 P·V bar)" * test::needs_hopper()) {
  std::uint32_t seed = 9900;
  std::vector<AttnCheckCase> cases;
  for (Distribution d : {Distribution::normal, Distribution::outliers, Distribution::k_bias, Distribution::sharp}) {
    AttnCheckCase c;  // GQA, 16 q tiles (a CTA with one warpgroup), a tail block
    c.distribution = d, c.heads_q = 4, c.heads_kv = 2, c.seq_q = 1000, c.seq_kv = 1000;
    cases.push_back(c);
  }
  AttnCheckCase many;  // 24 blocks: the ring's slots each refilled five times; bf16, NHD, no LSE
  many.seq_q = 1500, many.seq_kv = 3000, many.dtype = DType::bf16, many.layout = Layout::nhd, many.lse = false;
  cases.push_back(many);
  AttnCheckCase few;  // fewer blocks than slots, a CTA of two warpgroups
  few.batch = 2, few.heads_q = 3, few.heads_kv = 1, few.seq_q = 300, few.seq_kv = 257;
  cases.push_back(few);
  AttnCheckCase causal;  // causal at both alignments: warpgroups with fewer blocks than the ring carries
  causal.options.mask = Mask::causal_top_left, causal.seq_q = 1000, causal.seq_kv = 1000;
  cases.push_back(causal);
  causal.options.mask = Mask::causal_bottom_right, causal.seq_q = 700, causal.seq_kv = 1500;
  cases.push_back(causal);
  for (AttnCheckCase& c : cases) {
    c.options.pv = PvType::fp8_e4m3, c.options.family = AttnFamily::wgmma, c.options.tile = wgmma_shared_tile();
    c.seed = seed++;
    CAPTURE(c.describe());
    const AttnCheckReport r = run_attention_check(c);
    MESSAGE(fmt::format("{:<100} cos {:.6f} relL1 {:.5f} lse {:.2e} {}", c.describe(), r.cosine, r.rel_l1,
                        r.lse_max_abs_error, r.spec));
    const test::Bars bars = test::bars_for(c.distribution, true, QuantType::int8, layout::Granularity::per_thread);
    CHECK(r.spec.find(wgmma_shared_tile().name()) != std::string::npos);
    CHECK(r.unwritten == 0);
    CHECK(r.cosine >= bars.min_cosine);
    CHECK(r.rel_l1 <= bars.max_rel_l1);
    if (c.lse) CHECK(r.lse_max_abs_error <= bars.max_lse_error);
  }
}
