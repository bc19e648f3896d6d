// The cache schema's upgrade from version 1 (issue 5 added tuning_winners and reshaped
// tuning_records): cubins survive, the tuning tables are replaced and work.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "cache/cubin_store.hpp"
#include "cache/tuning_store.hpp"

namespace fs = std::filesystem;
using namespace sagejit;

TEST_CASE("a version 1 cache keeps its cubins and gets the new tuning tables") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("sagejit-migrate-{}-{}", getpid(), std::random_device{}());
  fs::create_directories(dir);
  const fs::path db = dir / "cache.sqlite3";
  CubinRecord r;
  r.key = {"attn.mma.test", "0123456789abcdef", "1", "13.0", "-arch=sm_89", "sm_89"};
  r.lowered_name = "_Z1kv";
  r.cubin = {'\x7f', 'E', 'L', 'F', '\0', '\1'};
  CubinStore::open(db)->put(r);
  {
    // Make it a version 1 file: its tuning_records had no run, family, spec, spread or runs.
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
    const char* v1 =
        "DROP TABLE tuning_winners; DROP TABLE tuning_records; "
        "CREATE TABLE tuning_records (id INTEGER PRIMARY KEY, device_name TEXT NOT NULL, arch TEXT NOT NULL, "
        "sm_count INTEGER NOT NULL, driver_version TEXT NOT NULL, nvrtc_version TEXT NOT NULL, template_hash TEXT "
        "NOT NULL, problem_bucket TEXT NOT NULL, tile_config TEXT NOT NULL, time_ms REAL, status TEXT NOT NULL, "
        "reason TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL); PRAGMA user_version = 1;";
    REQUIRE(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
  }
  auto cubins = CubinStore::open(db);
  auto got = cubins->get(r.key);
  REQUIRE(got);
  CHECK(got->cubin == r.cubin);
  CHECK(cubins->info().schema_version == kCacheSchemaVersion);
  CHECK_FALSE(cubins->info().in_memory);
  auto tuning = TuningStore::open(db);
  TuningWinner w;
  w.env = {"gpu", "sm_89", 1, "13.0", "13.0", "0123456789abcdef"};
  w.bucket = "b", w.family = "mma", w.tile = "t64x64w4s2", w.spec = "s", w.median_ms = 1, w.run_id = "r";
  tuning->put_winner(w);
  // Written to the file, not kept in memory by a store that failed: a new connection sees it.
  CHECK(TuningStore::open(db)->winner(w.env, "b"));
  fs::remove_all(dir);
}
