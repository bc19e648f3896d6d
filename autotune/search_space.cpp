// search_space.cpp — enumeration and static pruning of tile variants.
#include "autotune/search_space.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.hpp"

namespace sagejit {
namespace {

// Registers a thread keeps besides the accumulators (fragment registers of Q, K and V, addresses,
// the running max and sum, loop state): measured as 60-70 on the shipped tiles with NVRTC 13.0
// (ptxas -v: 96 accumulator + ~70 = 168 registers at D = 128, warp_q 16, cta_k 64).
constexpr int kOtherRegisters = 64;
constexpr int kMaxRegistersPerThread = 255;
constexpr int kRegistersPerSm = 64 * 1024;

}  // namespace

FieldRanges field_ranges(AttnFamily family) {
  // wgmma: stages 1 is the single-warpgroup form, with 2 to 4 CTAs per SM; cta_q 192 its shared-ring form.
  if (family == AttnFamily::wgmma) {
    return {{64, 128, 192}, {64, 128}, {4, 8, 12}, {1, 2, 3, 4}, {1, 2, 3, 4}, {false, true}};
  }
  return {{64, 128}, {32, 64, 128}, {2, 4, 8}, {2, 3, 4}, {1, 2}, {false}};
}

int mma_accumulator_registers(const AttnSpec& s) {
  const int warp_q = s.tile.warp_q();
  return warp_q * s.head_dim / 32 + warp_q * s.tile.cta_k / 32;
}

std::string mma_register_check(const AttnSpec& s) {
  if (s.family != AttnFamily::mma) return {};
  const int threads_per_sm = s.tile.threads() * std::max(1, s.tile.min_ctas_per_sm);
  const int cap = std::min(kMaxRegistersPerThread, kRegistersPerSm / std::max(1, threads_per_sm));
  const int need = mma_accumulator_registers(s) + kOtherRegisters;
  if (need <= cap) return {};
  return fmt::format("registers: {} accumulators + ~{} others = {} per thread exceeds the cap of {} ({} threads x {} "
                     "CTAs per SM): it would spill",
                     mma_accumulator_registers(s), kOtherRegisters, need, cap, s.tile.threads(),
                     s.tile.min_ctas_per_sm);
}

SearchSpace search_space(const Problem& p) {
  SearchSpace space;
  const AttnSpec def = default_spec(p);
  space.candidates.push_back(def);
  auto seen = [&](const AttnSpec& s) {
    return std::any_of(space.candidates.begin(), space.candidates.end(),
                       [&](const AttnSpec& c) { return c.family == s.family && c.tile == s.tile; });
  };
  for (AttnFamily family : {AttnFamily::mma, AttnFamily::wgmma}) {
    if (!family_unfit(p, family).empty()) continue;  // no tile of it can run this problem
    const FieldRanges r = field_ranges(family);
    for (int cq : r.cta_q)
      for (int ck : r.cta_k)
        for (int w : r.warps_q)
          for (int st : r.stages)
            for (int c : r.min_ctas_per_sm)
              for (bool persistent : r.persistent) {
                AttnSpec s = with_variant(p, family, AttnTile{cq, ck, w, st, c, persistent});
                if (seen(s)) continue;
                try {
                  s.validate();
                } catch (const InvalidArgument& e) {
                  space.pruned.push_back({s, e.what()});
                  continue;
                }
                if (std::string why = mma_register_check(s); !why.empty()) {
                  space.pruned.push_back({s, why});
                  continue;
                }
                space.candidates.push_back(s);
              }
  }
  return space;
}

}  // namespace sagejit
