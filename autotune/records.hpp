// records.hpp — what a tuning record means to the runtime: the environment it must match, the
// deterministic choice of a winner among a run's candidates, and when a record is stale.
//
// Pure functions over rows (no GPU, no database), so the rules are tested on a CPU; the rows live
// in cache/tuning_store. How it fails: current_environment() throws NotAvailable without a GPU;
// nothing else throws.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "autotune/problem.hpp"
#include "cache/tuning_store.hpp"

namespace sagejit {

// A candidate must beat the heuristic default's median by more than this fraction to replace it:
// run-to-run spread on the H100 is about 1%, and a "win" inside it is noise that a later
// measurement can reverse.
constexpr double kWinMargin = 0.01;

// The environment of device `ordinal` as tuning records carry it. NVRTC's version is "none" when
// NVRTC cannot be loaded (a JIT-free deployment): records measured anywhere else then do not match.
TuningEnv current_environment(int ordinal);

// "13.0" for cuDriverGetVersion's 13000.
std::string driver_version_string(int version);

// The winner among `records` (one run, or several runs of the same bucket): the lowest median of
// status "ok"; the default (family and tile names given) keeps the title unless beaten by more than
// kWinMargin; exact ties go to the smaller (family, tile) name. The result depends on the set of
// records only, not their order: every process reading the same rows picks the same one.
std::optional<TuningRecord> pick_winner(const std::vector<TuningRecord>& records, const std::string& default_family,
                                        const std::string& default_tile);

// The spec a winner stands for, or nothing when its names do not parse or the spec no longer
// validates (records are data: a bad one falls back to the default, never aborts a call).
std::optional<AttnSpec> spec_of_winner(const Problem& p, const TuningWinner& w);

// A row is stale when `current` could never use it and no other machine can either: built from
// other templates or (when `current` knows its NVRTC) another NVRTC, or measured on this very GPU
// model under another driver. Rows of other GPU models are not stale: they serve those GPUs (and
// `sagejit export` for them).
bool is_stale(const TuningEnv& row, const TuningEnv& current);

}  // namespace sagejit
