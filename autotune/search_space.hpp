// search_space.hpp — the tile variants the tuner tries for a problem, per kernel family and arch.
//
// Each family declares the range of every AttnTile field worth trying (field_ranges); the cross
// product is pruned before anything compiles by
//   1. AttnSpec::validate(): every rule of the template (divisibility, stages, shared memory of the
//      arch, CTAs that cannot be resident), so the ranges stay generous and the rules live in one place;
//   2. a register estimate for the mma family: the fp32 accumulators of O and S a thread holds
//      must leave room for addresses, fragments and softmax state under the per-thread cap that
//      __launch_bounds__(threads, min_ctas_per_sm) sets; a tile over it spills (ptxas would tell,
//      after a compile of seconds).
// What survives is compiled and timed; ptxas's spill report prunes again after compiling (tuner).
// How it fails: it does not; a pruned variant is returned with its reason.
#pragma once

#include <string>
#include <vector>

#include "autotune/problem.hpp"

namespace sagejit {

struct FieldRanges {
  std::vector<int> cta_q, cta_k, warps_q, stages, min_ctas_per_sm;
  std::vector<bool> persistent;
};

// The values tried per field. mma: cta_q 64/128, cta_k 32/64/128, warps_q 2/4/8, stages 2..4,
// min_ctas_per_sm 1/2. wgmma: cta_q 64/128, cta_k 64/128, warps_q 4/8/12 (one to three warpgroups),
// stages 1..4 (1: the single-warpgroup form), min_ctas_per_sm 1..4, persistent or not (validate()
// keeps the combinations the kernels have).
FieldRanges field_ranges(AttnFamily family);

struct PrunedVariant {
  AttnSpec spec;
  std::string reason;  // the rule it broke
};

struct SearchSpace {
  std::vector<AttnSpec> candidates;  // the default first, then in enumeration order, no duplicates
  std::vector<PrunedVariant> pruned;
  int default_index = 0;             // always 0: the heuristic default is always timed
};

// Registers a thread of the mma kernel needs for its O and S accumulators (fp32): warp_q · D / 32
// and warp_q · cta_k / 32.
int mma_accumulator_registers(const AttnSpec& s);
// The register estimate's verdict: empty when the tile fits, else the reason.
std::string mma_register_check(const AttnSpec& s);

// Every family the arch might run, every combination of its ranges, pruned. The heuristic
// default_spec(p) is always the first candidate, even if the ranges do not contain it.
SearchSpace search_space(const Problem& p);

}  // namespace sagejit
