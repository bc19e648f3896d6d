// Tests of autotune/records and autotune/policy over cache/tuning_store: the deterministic winner,
// environment matching, first-writer-wins across processes, staleness, and the runtime's choice
// (tuned record → bundle → tune hook → heuristic).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>

#include "autotune/policy.hpp"
#include "autotune/records.hpp"
#include "cache/tuning_store.hpp"
#include "tests/cpu/support.hpp"

namespace fs = std::filesystem;
using namespace sagejit;

namespace {

// The tuning database of a test: a file in its own temporary directory.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("tune-test") {}
  fs::path db() const { return path / "cache.sqlite3"; }
};

TuningEnv env() { return {"NVIDIA H100 80GB HBM3", "sm_90a", 132, "13.0", "13.0", "0123456789abcdef"}; }

TuningRecord rec(const std::string& tile, std::optional<double> ms, const std::string& status = "ok",
                 const std::string& family = "mma") {
  TuningRecord r;
  r.env = env();
  r.bucket = "b";
  r.family = family;
  r.tile = tile;
  r.spec = "attn." + family + "." + tile;
  r.median_ms = ms;
  r.status = status;
  r.runs = ms ? 20 : 0;
  r.run_id = "run";
  return r;
}

Problem problem() {
  Problem p;
  p.arch = parse_arch("sm_89");
  p.batch = 2, p.heads_q = 8, p.heads_kv = 8, p.seq_q = 2048, p.seq_kv = 2048, p.head_dim = 128;
  return p;
}

TuningWinner winner_for(const Problem& p, const AttnTile& t, const TuningEnv& e = env()) {
  TuningWinner w;
  w.env = e;
  w.bucket = bucket_name(p);
  w.family = "mma";
  w.tile = t.name();
  w.spec = with_variant(p, AttnFamily::mma, t).canonical_name();
  w.median_ms = 1.0;
  w.default_ms = 1.2;
  w.run_id = "r1";
  return w;
}

}  // namespace

TEST_CASE("the winner is the lowest median of ok records, whatever their order") {
  std::vector<TuningRecord> rs = {rec("t128x64w8s2", 1.00), rec("t64x64w4s2", 0.80), rec("t64x32w2s3", std::nullopt, "spills"),
                                  rec("t128x32w8s2", 0.50, "compile_error"), rec("t128x128w8s2", 0.90)};
  rs[3].median_ms = std::nullopt;
  const std::string def = "t128x64w8s2";
  auto w = pick_winner(rs, "mma", def);
  REQUIRE(w);
  CHECK(w->tile == "t64x64w4s2");
  std::sort(rs.begin(), rs.end(), [](const auto& a, const auto& b) { return a.tile < b.tile; });
  do {
    CHECK(pick_winner(rs, "mma", def)->tile == "t64x64w4s2");
  } while (std::next_permutation(rs.begin(), rs.end(), [](const auto& a, const auto& b) { return a.tile < b.tile; }));
  CHECK_FALSE(pick_winner({rec("x", std::nullopt, "spills")}, "mma", def));
  CHECK_FALSE(pick_winner({}, "mma", def));
}

TEST_CASE("the default keeps the title unless beaten by more than the noise margin; exact ties go by name") {
  const std::string def = "t128x64w8s2";
  CHECK(pick_winner({rec(def, 1.000), rec("t64x64w4s2", 0.995)}, "mma", def)->tile == def);
  CHECK(pick_winner({rec(def, 1.000), rec("t64x64w4s2", 0.980)}, "mma", def)->tile == "t64x64w4s2");
  CHECK(pick_winner({rec("t64x64w4s3", 0.9), rec("t64x64w4s2", 0.9)}, "mma", def)->tile == "t64x64w4s2");
  CHECK(pick_winner({rec("t64x64w4s2", 0.9, "ok", "wgmma"), rec("t64x64w4s2", 0.9)}, "mma", def)->family == "mma");
}

TEST_CASE("a winner's spec: parsed and validated, or nothing") {
  const Problem p = problem();
  auto s = spec_of_winner(p, winner_for(p, {64, 64, 4, 3, 1}));
  REQUIRE(s);
  CHECK(s->tile == AttnTile{64, 64, 4, 3, 1});
  CHECK(s->quant.pv == default_spec(p).quant.pv);
  TuningWinner bad = winner_for(p, {64, 64, 4, 3, 1});
  bad.tile = "t64x64w3s3";  // warp_q not a multiple of 16
  CHECK_FALSE(spec_of_winner(p, bad));
  bad.tile = "garbage";
  CHECK_FALSE(spec_of_winner(p, bad));
  bad = winner_for(p, {64, 64, 4, 3, 1});
  bad.family = "wgmma";  // sm_89 has no wgmma
  CHECK_FALSE(spec_of_winner(p, bad));
}

TEST_CASE("staleness: other templates or NVRTC always; another driver only on this GPU model") {
  const TuningEnv here = env();
  TuningEnv row = here;
  CHECK_FALSE(is_stale(row, here));
  row.template_hash = "ffffffffffffffff";
  CHECK(is_stale(row, here));
  row = here, row.nvrtc_version = "12.8";
  CHECK(is_stale(row, here));
  TuningEnv no_nvrtc = here;
  no_nvrtc.nvrtc_version = "none";
  CHECK_FALSE(is_stale(row, no_nvrtc));
  row = here, row.driver_version = "12.9";
  CHECK(is_stale(row, here));
  row.device_name = "NVIDIA A100-SXM4-80GB", row.arch = "sm_80", row.sm_count = 108;
  CHECK_FALSE(is_stale(row, here));  // serves A100s
}

TEST_CASE("tuning store: every record kept; winners first-writer-wins; another environment never matches") {
  TempDir dir;
  auto store = TuningStore::open(dir.db());
  store->put_records({rec("a", 1.0), rec("b", std::nullopt, "spills")});
  auto rs = store->records(env(), "b");
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].median_ms == 1.0);
  CHECK_FALSE(rs[1].median_ms);
  CHECK(rs[1].status == "spills");
  CHECK_FALSE(rs[0].created_at.empty());

  const Problem p = problem();
  const TuningWinner first = winner_for(p, {64, 64, 4, 3, 1});
  CHECK(store->put_winner(first).tile == first.tile);
  TuningWinner second = winner_for(p, {128, 64, 8, 3, 1});
  second.run_id = "r2";
  // A second store on the same file (another process, another GPU) gets the first winner back.
  auto other = TuningStore::open(dir.db());
  const TuningWinner kept = other->put_winner(second);
  CHECK(kept.tile == first.tile);
  CHECK(kept.run_id == "r1");
  CHECK(other->winner(env(), bucket_name(p))->tile == first.tile);

  for (int field = 0; field < 6; ++field) {
    TuningEnv e = env();
    if (field == 0) e.device_name = "NVIDIA H100 PCIe";
    if (field == 1) e.arch = "sm_89";
    if (field == 2) e.sm_count = 114;
    if (field == 3) e.driver_version = "12.9";
    if (field == 4) e.nvrtc_version = "12.8";
    if (field == 5) e.template_hash = "ffffffffffffffff";
    CAPTURE(field);
    CHECK_FALSE(store->winner(e, bucket_name(p)));
  }
  CHECK(store->forget(env(), bucket_name(p)) == 1);
  CHECK_FALSE(store->winner(env(), bucket_name(p)));
  CHECK(store->prune([](const TuningEnv&) { return true; }) == 2);
  CHECK(store->all_records().empty());
}

TEST_CASE("two processes storing winners for the same slot at once agree on one") {
  TempDir dir;
  const Problem p = problem();
  TuningStore::open(dir.db());  // create the file first
  std::vector<pid_t> kids;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      auto s = TuningStore::open(dir.db());
      TuningWinner w = winner_for(p, {64, 64, 4, 2 + i % 3, 1});
      w.run_id = "child" + std::to_string(i);
      const TuningWinner got = s->put_winner(w);
      // Every child sees the winner that is in the file afterwards.
      _exit(got.run_id.rfind("child", 0) == 0 ? 0 : 1);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  auto s = TuningStore::open(dir.db());
  REQUIRE(s->winners().size() == 1);
}

TEST_CASE("an unusable cache path gives a working in-memory tuning store, never an exception") {
  TempDir dir;
  fs::create_directories(dir.path / "blocker");
  auto store = TuningStore::open(dir.path / "blocker");  // a directory, not a database file
  const Problem p = problem();
  CHECK(store->put_winner(winner_for(p, {64, 64, 4, 3, 1})).tile == "t64x64w4s3");
  CHECK(store->winner(env(), bucket_name(p)));
}

TEST_CASE("the choice: tuned record, then bundle, then the tune hook, then the heuristic; deterministic") {
  TempDir dir;
  const Problem p = problem();
  auto store = TuningStore::open(dir.db());
  int tuned = 0;
  KernelPolicy::TuneHook hook = [&](const Problem& q) -> std::optional<TuningWinner> {
    ++tuned;
    return store->put_winner(winner_for(q, {64, 32, 2, 2, 1}));
  };
  // Nothing stored, no hook: the heuristic.
  KernelChoice c = KernelPolicy(*store, nullptr).choose(p, env());
  CHECK(c.source == ChoiceSource::heuristic);
  CHECK(c.spec.canonical_name() == default_spec(p).canonical_name());
  // A bundle's winner for this GPU.
  Bundle bundle;
  bundle.add(winner_for(p, {128, 32, 8, 2, 1}));
  c = KernelPolicy(*store, &bundle).choose(p, env());
  CHECK(c.source == ChoiceSource::bundle);
  CHECK(c.spec.tile == AttnTile{128, 32, 8, 2, 1});
  // The tune hook runs once, stores, and from then on the record is used.
  c = KernelPolicy(*store, nullptr, hook).choose(p, env());
  CHECK(c.source == ChoiceSource::tuned_now);
  CHECK(tuned == 1);
  c = KernelPolicy(*store, &bundle, hook).choose(p, env());
  CHECK(c.source == ChoiceSource::tuned);
  CHECK(c.spec.tile == AttnTile{64, 32, 2, 2, 1});
  CHECK(tuned == 1);
  // Every reader of the same file picks the same spec; another GPU model does not use the record.
  for (int i = 0; i < 3; ++i) {
    auto reader = TuningStore::open(dir.db());
    CHECK(KernelPolicy(*reader, nullptr).choose(p, env()).spec.canonical_name() == c.spec.canonical_name());
  }
  TuningEnv a100 = env();
  a100.device_name = "NVIDIA A100-SXM4-80GB";
  CHECK(KernelPolicy(*store, nullptr).choose(p, a100).source == ChoiceSource::heuristic);
  // A nearby shape (same bucket) gets the same variant.
  Problem near = p;
  near.seq_q = 1500, near.seq_kv = 1100;
  CHECK(KernelPolicy(*store, nullptr).choose(near, env()).spec.tile == AttnTile{64, 32, 2, 2, 1});
}

TEST_CASE("a stored winner that no longer validates falls back to the heuristic") {
  TempDir dir;
  const Problem p = problem();
  auto store = TuningStore::open(dir.db());
  TuningWinner w = winner_for(p, {64, 64, 4, 3, 1});
  w.tile = "t64x64w4s9";  // stages out of range (a template change, say)
  store->put_winner(w);
  const KernelChoice c = KernelPolicy(*store, nullptr).choose(p, env());
  CHECK(c.source == ChoiceSource::heuristic);
}
