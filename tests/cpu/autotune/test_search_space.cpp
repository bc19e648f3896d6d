// Tests of autotune/search_space: what is enumerated, what is pruned (and why) before compiling.
#include <doctest/doctest.h>

#include <set>

#include "autotune/search_space.hpp"
#include "runtime/error.hpp"

using namespace sagejit;

namespace {

Problem problem(const char* arch, int d) {
  Problem p;
  p.arch = parse_arch(arch);
  p.batch = 4, p.heads_q = 32, p.heads_kv = 32, p.seq_q = 4096, p.seq_kv = 4096, p.head_dim = d;
  return p;
}

std::size_t product(const FieldRanges& r) {
  return r.cta_q.size() * r.cta_k.size() * r.warps_q.size() * r.stages.size() * r.min_ctas_per_sm.size() *
         r.persistent.size();
}

}  // namespace

TEST_CASE("every candidate validates and fits the register estimate; the default comes first; no duplicates") {
  for (const Arch& arch : supported_archs()) {
    for (int d : supported_head_dims()) {
      const Problem p = problem(arch.name().c_str(), d);
      const SearchSpace space = search_space(p);
      CAPTURE(arch.name());
      CAPTURE(d);
      REQUIRE_FALSE(space.candidates.empty());
      CHECK(space.default_index == 0);
      CHECK(space.candidates[0].canonical_name() == default_spec(p).canonical_name());
      std::set<std::string> names;
      for (const AttnSpec& s : space.candidates) {
        CHECK_NOTHROW(s.validate());
        if (&s != &space.candidates[0]) CHECK(mma_register_check(s).empty());
        CHECK(names.insert(s.canonical_name()).second);
        // A variant changes only the family and tile: the numerics stay the default's.
        CHECK(s.quant.pv == space.candidates[0].quant.pv);
        CHECK(s.quant.qk == space.candidates[0].quant.qk);
      }
      for (const PrunedVariant& v : space.pruned) CHECK_FALSE(v.reason.empty());
      // Every enumerated combination is either a candidate or pruned (the default may be extra).
      const std::size_t enumerated = product(field_ranges(AttnFamily::mma)) + product(field_ranges(AttnFamily::wgmma));
      CHECK(space.candidates.size() + space.pruned.size() >= enumerated);
      CHECK(space.candidates.size() + space.pruned.size() <= enumerated + 1);
    }
  }
}

TEST_CASE("pruning reasons: shared memory from validate(), registers from the estimate, rules of the template") {
  const SearchSpace space = search_space(problem("sm_86", 256));
  bool smem = false, regs = false, warps = false;
  for (const PrunedVariant& v : space.pruned) {
    smem |= v.reason.find("shared memory") != std::string::npos;
    regs |= v.reason.find("registers") != std::string::npos;
    warps |= v.reason.find("tile.warps_q") != std::string::npos;
  }
  CHECK(smem);
  CHECK(regs);
  CHECK(warps);
}

TEST_CASE("the register estimate") {
  AttnSpec s;
  s.arch = parse_arch("sm_89");
  s.head_dim = 128;
  s.tile = {128, 64, 8, 2, 1};  // warp_q 16: 64 + 32 accumulators, the shipped tile
  CHECK(mma_accumulator_registers(s) == 96);
  CHECK(mma_register_check(s).empty());
  s.tile = {128, 128, 2, 2, 1};  // warp_q 64: 256 + 256
  CHECK(mma_register_check(s).find("spill") != std::string::npos);
  s.tile = {128, 64, 8, 2, 2};  // two CTAs of 256 threads cap a thread at 128 registers
  CHECK_FALSE(mma_register_check(s).empty());
  s.family = AttnFamily::wgmma;  // not modelled: ptxas's report prunes it after compiling
  CHECK(mma_register_check(s).empty());
}

TEST_CASE("families: no wgmma off sm_90a, nor for empty problems; wgmma variants on sm_90a, varlen too") {
  auto families = [](const Problem& p) {
    std::set<AttnFamily> f;
    for (const AttnSpec& s : search_space(p).candidates) f.insert(s.family);
    return f;
  };
  CHECK(families(problem("sm_89", 128)) == std::set<AttnFamily>{AttnFamily::mma});
  Problem h = problem("sm_90a", 128);
  h.pv = PvType::fp8_e4m3;
  CHECK(families(h).count(AttnFamily::wgmma) == 1);
  h.varlen = true;
  CHECK(families(h).count(AttnFamily::wgmma) == 1);
  // The shared-ring form is a candidate where it runs (D = 128, any mask) and pruned, with its rule, elsewhere.
  auto tiles_of = [](const Problem& p) {
    std::set<std::string> t;
    for (const AttnSpec& s : search_space(p).candidates) t.insert(s.tile.name());
    return t;
  };
  CHECK(tiles_of(h).count(wgmma_shared_tile().name()) == 1);
  h.mask = Mask::causal_top_left;
  CHECK(tiles_of(h).count(wgmma_shared_tile().name()) == 1);
  h.mask = Mask::none;
  h.head_dim = 64;
  CHECK(tiles_of(h).count(wgmma_shared_tile().name()) == 0);
  bool named = false;
  for (const PrunedVariant& v : search_space(h).pruned) {
    named |= v.spec.tile == wgmma_shared_tile() && v.reason.find("runs head_dim 128") != std::string::npos;
  }
  CHECK(named);
  h.head_dim = 128;
  h.seq_kv = 0;
  CHECK(families(h) == std::set<AttnFamily>{AttnFamily::mma});
}
