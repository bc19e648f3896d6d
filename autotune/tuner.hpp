// tuner.hpp — tunes one problem bucket: enumerate and prune (search_space), compile every survivor
// in parallel on all CPU cores, time each with CUDA events, store every candidate and the winner.
//
// Timing (time_variant): the problem's inputs are allocated in enough copies that their quantized
// form exceeds twice the L2 (up to 8 copies), each copy on its own stream with its own workspace, and
// calls rotate through them, so L2 never holds the next call's inputs and small shapes are not
// flattered. Each call is bracketed by its own events after warm-up (TimingOptions::warmup calls,
// then calls for warmup_ms of wall time, so that each candidate is timed at the clock its own power
// draw holds); runs are added in batches of
// 10 until the median moves by less than 0.5% between batches (at least 20, at most 100 runs); a
// candidate slower than 1.3x the best so far stops at 10 runs. Kernel-only by default (the
// attention kernel on already quantized inputs; the tile also sets the quantization blocks, and
// each copy is quantized with the candidate's own tile first), end-to-end on request.
//
// How it fails: a candidate that fails to compile, spills (ptxas report) or fails to launch is
// recorded with its status and reason and skipped; the search goes on. tune_and_store throws only
// when nothing can run at all (no GPU: NotAvailable; the quantization kernels fail to compile).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autotune/problem.hpp"
#include "autotune/search_space.hpp"
#include "cache/tuning_store.hpp"
#include "runtime/jit.hpp"

namespace sagejit {

struct TimingOptions {
  int warmup = 3;
  // Then untimed calls, each waited for as the timed runs are, until this much wall time has passed
  // (one call more at most; fewer for a candidate whose median over 10 of them is past the give-up
  // time). Must be finite (InvalidArgument). The kernels are
  // power-bound, and under load the card's power cap lowers the clock over about half a second: the
  // single form at B1 H10 16k, timed right after a pause or a lighter kernel, ran its first repeat
  // 6-8% faster than its later ones (H200: 1.456-1.466 ms, then 1.52-1.62;
  // bench/results/2026-11-28-wave-cut-and-quantizer-bounds-h200.md §3). 0: none.
  double warmup_ms = 500;
  int min_runs = 20;
  int max_runs = 100;
  double stable_change = 0.005;  // stop when the median moves less than this between batches
  bool end_to_end = false;       // quantization included (what a caller gets), else kernel only
  // AttentionOptions::fused_q (false: Q always in its own pass). Tuning times kernel-only candidates
  // with it off, so that none includes Q's quantization (tune_and_store).
  bool fused_q = true;
  int max_input_sets = 8;
};

struct Timing {
  double median_ms = 0;
  double spread = 0;  // (p75 - p25) / median
  double min_ms = 0, max_ms = 0;
  int runs = 0;
};

struct TuneProgress {
  std::string phase;  // "compile" or "time"
  int done = 0, total = 0;
};

struct TuneOptions {
  TimingOptions timing;
  double give_up_ratio = 1.3;  // a candidate this much slower than the best so far stops early
  bool force = false;          // tune even if a winner is stored (and replace it)
  int max_candidates = 0;      // 0: all; else the default plus the first max_candidates - 1 others
  std::function<void(const TuneProgress&)> progress;
};

struct CandidateResult {
  AttnSpec spec;
  bool is_default = false;
  TuningRecord record;  // status, reason, median_ms, spread, runs
  ResourceUsage usage;
};

struct TuneResult {
  Problem problem;
  std::string bucket;
  TuningEnv env;
  bool already_tuned = false;  // a winner was stored and force was off: nothing was run
  std::vector<CandidateResult> candidates;
  std::vector<PrunedVariant> pruned;
  std::optional<TuningWinner> winner;  // the stored winner (this run's, or an earlier run's)
  bool adopted = false;                // another run stored its winner first; that one stands
  std::optional<double> default_ms;
  double compile_seconds = 0, time_seconds = 0, seconds = 0;
};

// Compiles the attention kernel of every candidate in parallel (settings().compile_threads), the
// quantization kernels once. No GPU needed. Each result's record has status "ok", "compile_error"
// or "spills" (with the reason); `env` and `bucket` are copied into the records.
std::vector<CandidateResult> compile_candidates(const Problem& p, const SearchSpace& space, Jit& jit,
                                                const TuningEnv& env, const std::string& bucket,
                                                const std::function<void(const TuneProgress&)>& progress = {});

// Times `spec` on the current GPU for problem `p` (through attention() with the spec forced).
Timing time_variant(const Problem& p, const AttnSpec& spec, const TimingOptions& o, double give_up_ms = 0);

// The whole search for one problem, with the results stored (every candidate, then the winner:
// first writer wins). The kernels are compiled through `jit`, which should be default_jit() (the one
// attention() loads from) so nothing compiles twice.
TuneResult tune_and_store(const Problem& p, const TuneOptions& o, TuningStore& store, Jit& jit, const TuningEnv& env);

}  // namespace sagejit
