// GPU tests of autotune/: a tuning run records every candidate with a time or a reason, stores one
// winner no slower than the heuristic default, is not repeated once stored, the runtime's choice
// then is the winner, and the winning variant computes correct attention; with nothing tuned, the
// runtime's heuristic choice is made for each shape, not once per bucket. Skipped without a GPU.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "autotune/policy.hpp"
#include "autotune/records.hpp"
#include "autotune/tuner.hpp"
#include "reference/attention_check.hpp"
#include "runtime/device.hpp"
#include "runtime/jit.hpp"
#include "tests/gpu/support.hpp"

namespace fs = std::filesystem;
using namespace sagejit;

namespace {

Problem small_problem() {
  Problem p;
  p.arch = current_device_info().arch();
  p.batch = 1, p.heads_q = 8, p.heads_kv = 2, p.seq_q = 1024, p.seq_kv = 1024, p.head_dim = 128;
  p.mask = Mask::causal_top_left;
  return p;
}

fs::path temp_db() {
  const fs::path dir = fs::temp_directory_path() / fmt::format("sagejit-gpu-tune-{}-{}", getpid(), std::random_device{}());
  fs::create_directories(dir);
  return dir / "cache.sqlite3";
}

}  // namespace

TEST_CASE("tuning one shape: every candidate recorded, a winner no slower than the default, chosen afterwards" *
          test::needs_gpu()) {
  const fs::path db = temp_db();
  auto store = TuningStore::open(db);
  const Problem p = small_problem();
  const TuningEnv env = current_environment(current_device_ordinal());
  TuneOptions o;
  o.max_candidates = 6;  // the default and five others: enough to exercise every path in test time
  const TuneResult r = tune_and_store(p, o, *store, default_jit(), env);
  MESSAGE(fmt::format("{}: {} candidates, {:.1f} s (compile {:.1f} s, time {:.1f} s)", r.bucket, r.candidates.size(),
                      r.seconds, r.compile_seconds, r.time_seconds));
  REQUIRE_FALSE(r.already_tuned);
  REQUIRE(r.candidates.size() >= 2);
  CHECK(r.candidates[0].is_default);
  const auto records = store->records(env, r.bucket);
  CHECK(records.size() == r.candidates.size());  // every candidate, not only the winner
  for (const TuningRecord& rec : records) {
    CAPTURE(rec.spec);
    if (rec.status == "ok") {
      REQUIRE(rec.median_ms);
      CHECK(*rec.median_ms > 0);
      CHECK(rec.runs >= 10);
    } else {
      CHECK_FALSE(rec.reason.empty());
    }
  }
  REQUIRE(r.winner);
  REQUIRE(r.default_ms);
  CHECK(r.winner->median_ms <= *r.default_ms);
  MESSAGE(fmt::format("default {:.4f} ms, winner {} {} {:.4f} ms", *r.default_ms, r.winner->family, r.winner->tile,
                      r.winner->median_ms));

  // Stored: a second run does nothing, and the runtime's choice is the winner.
  CHECK(tune_and_store(p, o, *store, default_jit(), env).already_tuned);
  const KernelChoice c = KernelPolicy(*store, nullptr).choose(p, env);
  CHECK(c.source == ChoiceSource::tuned);
  CHECK(c.spec.canonical_name() == r.winner->spec);

  // The winner computes attention as accurately as the kernels always must.
  AttnCheckCase check;
  check.heads_q = 8, check.heads_kv = 2, check.seq_q = 1000, check.seq_kv = 1000;
  check.options.mask = Mask::causal_top_left;
  check.lse = c.spec.out.lse;  // the tuned problem's LSE choice is part of its spec
  check.options.pv = c.spec.quant.pv;
  check.options.family = c.spec.family;
  check.options.tile = c.spec.tile;
  const AttnCheckReport rep = run_attention_check(check);
  MESSAGE(fmt::format("{}: cosine {:.6f} rel L1 {:.4f}", rep.spec, rep.cosine, rep.rel_l1));
  CHECK(rep.spec == c.spec.canonical_name());
  CHECK(rep.unwritten == 0);
  CHECK(rep.cosine >= 0.999);
  fs::remove_all(db.parent_path());
}

TEST_CASE("the runtime's heuristic default is made for each shape, not once per tuning bucket" * test::needs_hopper()) {
  // B1 D 128 at 16k × 16k: every head count falls in one bucket (gqa1, sq16384, skv16384), yet the
  // shared-ring form's rules (visible pairs, wave use on this device's SMs) decide by head count.
  // Before the fix, the first shape's choice was memoized for the bucket and served to the others.
  Problem p;
  p.arch = current_device_info().arch();
  p.sm_count = current_device_info().sm_count;
  p.batch = 1, p.seq_q = p.seq_kv = 16384, p.head_dim = 128, p.mask = Mask::none;
  int shared_heads = 0, single_heads = 0;
  for (int h = 1; h <= 64 && (shared_heads == 0 || single_heads == 0); ++h) {
    p.heads_q = p.heads_kv = h;
    (default_spec(p).tile == wgmma_shared_tile() ? shared_heads : single_heads) = h;
  }
  REQUIRE(shared_heads > 0);
  REQUIRE(single_heads > 0);
  for (int h : {shared_heads, single_heads, shared_heads}) {
    CAPTURE(h);
    p.heads_q = p.heads_kv = h;
    const KernelChoice c = choose_kernel(p, std::nullopt, std::nullopt);
    // (Run with an empty cache, as scripts/gpu_check.sh does: a tuning record for the bucket would
    // stand for all its shapes.)
    REQUIRE(c.source == ChoiceSource::heuristic);
    CHECK(c.spec.tile == default_spec(p).tile);
  }
}
