// policy.cpp — the kernel choice: caller → tuned record → bundle → tune now → heuristic.
#include "autotune/policy.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "autotune/records.hpp"
#include "autotune/tuner.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"
#include "runtime/settings.hpp"

namespace sagejit {

std::string_view name(ChoiceSource s) {
  switch (s) {
    case ChoiceSource::caller:
      return "caller";
    case ChoiceSource::tuned:
      return "tuned";
    case ChoiceSource::bundle:
      return "bundle";
    case ChoiceSource::tuned_now:
      return "tuned_now";
    default:
      return "heuristic";
  }
}

Problem problem_of(const TensorRef& q, const TensorRef& k, bool lse, const VarlenBatch* varlen,
                   const AttentionOptions& o, const Arch& arch, int sm_count) {
  validate_head_dim(static_cast<int>(q.dim), "q.dim");
  Problem p;
  p.arch = arch;
  p.sm_count = sm_count;
  p.batch = static_cast<int>(q.batch);
  p.heads_q = static_cast<int>(q.heads);
  p.heads_kv = static_cast<int>(k.heads);
  p.seq_q = q.seq;
  p.seq_kv = k.seq;
  p.head_dim = static_cast<int>(q.dim);
  p.dtype = q.dtype;
  p.mask = o.mask;
  p.qk = o.qk;
  p.pv = o.pv;
  p.granularity = o.granularity;
  p.smooth_q = o.smooth_q;
  p.smooth_k = o.smooth_k;
  p.lse = lse;
  p.varlen = varlen != nullptr;
  if (varlen != nullptr) {
    p.batch = static_cast<int>(varlen->batch);
    p.seq_q = varlen->max_seqlen_q;
    p.seq_kv = varlen->max_seqlen_k;
  }
  return p;
}

KernelChoice KernelPolicy::choose(const Problem& p, const TuningEnv& env) const {
  const std::string bucket = bucket_name(p);
  if (auto w = store_.winner(env, bucket)) {
    if (auto s = spec_of_winner(p, *w)) return {*s, ChoiceSource::tuned};
    spdlog::warn("sagejit: ignoring the tuning record {} / {} for {}: it no longer names a valid kernel", w->family,
                 w->tile, bucket);
  }
  if (bundle_) {
    if (auto w = bundle_->winner(env, bucket)) {
      if (auto s = spec_of_winner(p, *w)) return {*s, ChoiceSource::bundle};
    }
  }
  if (tune_) {
    if (auto w = tune_(p)) {
      if (auto s = spec_of_winner(p, *w)) return {*s, ChoiceSource::tuned_now};
    }
  }
  return {default_spec(p), ChoiceSource::heuristic};
}

TuningStore& default_tuning_store() {
  static TuningStore* store = [] {
    const Settings& s = settings();
    // never destroyed, like default_jit(): the policy may consult it until exit
    return (s.disk_cache ? TuningStore::open(cache_database_path(s.cache_dir)) : TuningStore::in_memory()).release();
  }();
  return *store;
}

KernelChoice choose_kernel(const Problem& p, std::optional<AttnFamily> family, std::optional<AttnTile> tile) {
  if (family || tile) return {forced_spec(p, family, tile), ChoiceSource::caller};
  static std::mutex mutex;
  static std::map<std::pair<int, BucketKey>, KernelChoice> memo;
  static std::map<int, TuningEnv> envs;
  const int ordinal = current_device_info().ordinal;
  const auto key = std::make_pair(ordinal, bucket_key(p));
  // A tuned or bundled choice stands for its whole bucket; the heuristic default is made again for
  // each call (default_spec is pure and cheap), since it depends on the batch, the heads and the exact
  // lengths (the shared-ring form's pair and wave rules), which the bucket leaves out.
  auto per_call = [&p](const KernelChoice& c) {
    return c.source == ChoiceSource::heuristic ? KernelChoice{default_spec(p), ChoiceSource::heuristic} : c;
  };
  {
    std::lock_guard lock(mutex);
    if (auto it = memo.find(key); it != memo.end()) return per_call(it->second);
  }
  // First call of this bucket on this device: consult the records (outside the lock: tuning on
  // first use takes seconds, and other buckets need not wait for it).
  TuningEnv env;
  {
    std::lock_guard lock(mutex);
    auto it = envs.find(ordinal);
    if (it == envs.end()) it = envs.emplace(ordinal, current_environment(ordinal)).first;
    env = it->second;
  }
  KernelPolicy::TuneHook hook;
  if (settings().tune_on_first_use) {
    hook = [&env](const Problem& problem) -> std::optional<TuningWinner> {
      try {
        return tune_and_store(problem, TuneOptions{}, default_tuning_store(), default_jit(), env).winner;
      } catch (const std::exception& e) {
        spdlog::warn("sagejit: tuning {} on first use failed ({}); using the heuristic default", bucket_name(problem),
                     e.what());
        return std::nullopt;
      }
    };
  }
  KernelChoice choice = KernelPolicy(default_tuning_store(), default_jit().bundle(), hook).choose(p, env);
  spdlog::debug("sagejit: {} runs {} ({})", bucket_name(p), choice.spec.canonical_name(), name(choice.source));
  std::lock_guard lock(mutex);
  // If another thread decided first, its choice stands: one process never mixes the variants of a
  // tuned bucket.
  return per_call(memo.emplace(key, choice).first->second);
}

}  // namespace sagejit
