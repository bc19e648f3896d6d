// policy.hpp — which kernel variant a call runs: the caller's, a tuned record, a bundle's tuned
// choice, a tune on first use (SAGEJIT_TUNE=1), or the heuristic default, in that order.
//
// Deterministic: the choice is a function of the problem's bucket and the rows of the database (and
// bundle) it reads, so every process and every GPU reading the same file picks the same variant.
// A process decides once per (device, bucket) and keeps that choice for its life (a record that
// appears later is used by the next process), so one run never mixes variants for a bucket and a
// warm call does no lookup: the memo is keyed by integers, so it formats and allocates nothing.
// How it fails: a record that does not parse or validate is ignored (heuristic default); a tuning
// store that fails degrades to memory (cache/tuning_store); a tune on first use that fails logs a
// warning and falls back to the default. Nothing here throws for cache reasons.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "autotune/problem.hpp"
#include "cache/bundle.hpp"
#include "cache/tuning_store.hpp"
#include "sagejit/attention.hpp"

namespace sagejit {

enum class ChoiceSource { caller, tuned, bundle, tuned_now, heuristic };
std::string_view name(ChoiceSource s);

struct KernelChoice {
  AttnSpec spec;
  ChoiceSource source = ChoiceSource::heuristic;
};

// The problem of an attention call (throws InvalidArgument for a head dim the kernels lack,
// naming q.dim). A varlen call (varlen non-null) is the problem of its longest sequences, B of them
// (what the grid and the workspace are sized for), so it shares buckets with padded calls of that
// shape instead of bucketing on the packed token count.
Problem problem_of(const TensorRef& q, const TensorRef& k, bool lse, const VarlenBatch* varlen,
                   const AttentionOptions& o, const Arch& arch, int sm_count);

// The lookup itself, without a memo: testable with any store, bundle and environment.
class KernelPolicy {
 public:
  // Runs the tuner for a problem and returns the stored winner (or nothing if tuning failed).
  using TuneHook = std::function<std::optional<TuningWinner>(const Problem&)>;
  KernelPolicy(TuningStore& store, const Bundle* bundle, TuneHook tune = {})
      : store_(store), bundle_(bundle), tune_(std::move(tune)) {}
  KernelChoice choose(const Problem& p, const TuningEnv& env) const;

 private:
  TuningStore& store_;
  const Bundle* bundle_;
  TuneHook tune_;
};

// The process-wide choice for a call on the current device: the caller's family/tile if given,
// else the KernelPolicy choice over default_tuning_store() and the Jit's bundle, memoized per bucket
// and device; where that is the heuristic default, it is made again for p itself (it depends on
// more than the bucket).
KernelChoice choose_kernel(const Problem& p, std::optional<AttnFamily> family, std::optional<AttnTile> tile);

// The tuning records next to the kernel cache (in memory with SAGEJIT_CACHE=0).
TuningStore& default_tuning_store();

}  // namespace sagejit
