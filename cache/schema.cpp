// schema.cpp — the cache tables, opening a database into them, and moving a damaged one aside.
//
// Everything that can go wrong while opening is thrown; the caller (CubinStore::open) decides to
// fall back to memory.
#include "cache/schema.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>

#include "cache/cubin_store.hpp"

namespace sagejit {
namespace fs = std::filesystem;

namespace {

// The columns are read back in cubin_store.cpp (kRowColumns): keep the two in step.
constexpr const char* kCubinSchema = R"sql(
CREATE TABLE cubins (
  digest            TEXT PRIMARY KEY,   -- CubinKey::digest()
  spec              TEXT NOT NULL,
  template_hash     TEXT NOT NULL,
  generator_version TEXT NOT NULL,
  nvrtc_version     TEXT NOT NULL,
  options           TEXT NOT NULL,
  arch              TEXT NOT NULL,
  lowered_name      TEXT NOT NULL,
  blob              BLOB NOT NULL,
  checksum          TEXT NOT NULL,      -- hex FNV-1a of blob, verified on every load
  registers         INTEGER NOT NULL,
  stack_frame       INTEGER NOT NULL,
  spill_stores      INTEGER NOT NULL,
  spill_loads       INTEGER NOT NULL,
  shared_static     INTEGER NOT NULL,
  constant          INTEGER NOT NULL,
  compile_ms        REAL NOT NULL,
  bytes             INTEGER NOT NULL,
  created_at        TEXT NOT NULL       -- UTC, ISO 8601
);
)sql";

constexpr const char* kTuningSchema = R"sql(
-- One timed (or pruned) candidate per row; filled by the autotuner (cache/tuning_store.cpp). Every
-- candidate of every run is kept, not only the winner, so a choice can be audited afterwards.
CREATE TABLE tuning_records (
  id             INTEGER PRIMARY KEY,
  run_id         TEXT NOT NULL,         -- one tuning run of one bucket
  device_name    TEXT NOT NULL,
  arch           TEXT NOT NULL,
  sm_count       INTEGER NOT NULL,
  driver_version TEXT NOT NULL,
  nvrtc_version  TEXT NOT NULL,
  template_hash  TEXT NOT NULL,
  problem_bucket TEXT NOT NULL,
  family         TEXT NOT NULL,         -- mma or wgmma
  tile_config    TEXT NOT NULL,         -- AttnTile::name()
  spec           TEXT NOT NULL,         -- canonical spec name
  time_ms        REAL,                  -- median; NULL when the candidate was pruned
  spread         REAL,                  -- (p75 - p25) / median of its runs
  runs           INTEGER NOT NULL,
  status         TEXT NOT NULL,         -- 'ok', or why it was skipped (invalid, compile_error, spills, launch_error)
  reason         TEXT NOT NULL DEFAULT '',
  created_at     TEXT NOT NULL
);
CREATE INDEX tuning_records_key
  ON tuning_records (device_name, arch, sm_count, template_hash, problem_bucket);
-- The chosen variant per (environment, bucket). The first run to finish inserts it and later runs
-- keep it (INSERT OR IGNORE), so every process and every GPU reading this file picks the same one.
CREATE TABLE tuning_winners (
  device_name    TEXT NOT NULL,
  arch           TEXT NOT NULL,
  sm_count       INTEGER NOT NULL,
  driver_version TEXT NOT NULL,
  nvrtc_version  TEXT NOT NULL,
  template_hash  TEXT NOT NULL,
  problem_bucket TEXT NOT NULL,
  family         TEXT NOT NULL,
  tile_config    TEXT NOT NULL,
  spec           TEXT NOT NULL,
  time_ms        REAL NOT NULL,
  default_ms     REAL,                  -- the heuristic default's median in the same run
  run_id         TEXT NOT NULL,
  created_at     TEXT NOT NULL,
  PRIMARY KEY (device_name, arch, sm_count, driver_version, nvrtc_version, template_hash, problem_bucket)
);
)sql";

const std::string kSchema = std::string(kCubinSchema) + kTuningSchema;

// A file that moving aside would fix: damaged, not a sagejit cache, or from a newer sagejit.
class UnusableDatabase : public CacheError {
 public:
  using CacheError::CacheError;
};

fs::path with_suffix(fs::path p, const std::string& suffix) { return p += suffix; }

// Renames a damaged database to `<name>.corrupt-<unix time>` and returns the new name. Its -wal and
// -shm go with it under the matching names: they belong to the old file (a stale log must not be
// replayed into the new database) and SQLite finds them by name if someone opens the old copy.
fs::path move_aside(const fs::path& path) {
  const std::string stamp = std::to_string(std::time(nullptr));
  fs::path moved = with_suffix(path, ".corrupt-" + stamp);
  for (int i = 1; fs::exists(moved); ++i) {
    moved = with_suffix(path, fmt::format(".corrupt-{}-{}", stamp, i));
  }
  fs::rename(path, moved);
  for (const char* side : {"-wal", "-shm"}) {
    const fs::path from = with_suffix(path, side);
    if (fs::exists(from)) fs::rename(from, with_suffix(moved, side));
  }
  return moved;
}

// Switching a new file to WAL takes an exclusive lock that SQLite does not wait for through the
// busy handler: when two processes create the cache at once, one gets SQLITE_BUSY at once (seen
// in the two-process test). So wait here, as long as the busy timeout; once the file is in WAL
// mode the pragma changes nothing.
std::string enable_wal(sqlite::Db& db) {
  using namespace std::chrono;
  const auto deadline = steady_clock::now() + milliseconds(kCacheBusyTimeoutMs);
  for (;;) {
    try {
      return db.scalar("PRAGMA journal_mode=WAL");
    } catch (const sqlite::SqliteError& e) {
      if (!e.busy() || steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
}

// Brings a freshly opened file to our schema inside one write transaction, so two processes
// creating the same cache at once cannot both build it.
void prepare_schema(sqlite::Db& db) {
  if (const auto mode = enable_wal(db); mode != "wal") {
    spdlog::debug("sagejit cache: WAL unavailable here, journal mode is {}", mode);
  }
  // With WAL, NORMAL syncs only at checkpoints: a power loss may drop the newest cubins (they are
  // recompiled), but never corrupts the file, and a put does not wait for an fsync.
  db.exec("PRAGMA synchronous=NORMAL");
  sqlite::Transaction tx(db);
  const int version = cache_schema_version(db);
  if (version > kCacheSchemaVersion) {
    throw UnusableDatabase(fmt::format("schema version {} is newer than this build's {}", version,
                                       kCacheSchemaVersion));
  }
  if (version == 0) {
    // We set user_version in the same transaction that creates our tables, so tables without it
    // mean the file belongs to someone else.
    if (db.scalar("SELECT count(*) FROM sqlite_schema") != "0") {
      throw UnusableDatabase("not a sagejit cache");
    }
    db.exec(kSchema);
  } else if (version == 1) {
    // Version 1 had the same cubins table and a tuning_records table nothing wrote to: keep the
    // cubins (recompiling them costs minutes), replace the tuning tables.
    db.exec("DROP TABLE IF EXISTS tuning_records; DROP TABLE IF EXISTS tuning_winners;");
    db.exec(kTuningSchema);
  } else if (version < kCacheSchemaVersion) {
    // Every row is derived data: rebuild.
    db.exec("DROP TABLE IF EXISTS cubins; DROP TABLE IF EXISTS tuning_records; DROP TABLE IF EXISTS tuning_winners;");
    db.exec(kSchema);
  }
  db.exec(fmt::format("PRAGMA user_version={}", kCacheSchemaVersion));
  tx.commit();
}

// Opens `path` and readies its schema. Throws UnusableDatabase where moving the file aside would
// help. The connection is closed before this returns or throws, so the file can be renamed.
sqlite::Db connect(const fs::path& path) {
  try {
    sqlite::Db db(path, kCacheBusyTimeoutMs);
    prepare_schema(db);
    return db;
  } catch (const sqlite::SqliteError& e) {
    if (e.corrupt()) throw UnusableDatabase(e.what());
    throw;
  }
}

}  // namespace

std::string utc_now_iso() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

int cache_schema_version(sqlite::Db& db) { return std::stoi(db.scalar("PRAGMA user_version")); }

bool cache_disk_op(const fs::path& path, const char* what, const std::function<void()>& op,
                   const std::function<void(const char* why)>& fail) {
  try {
    op();
    return true;
  } catch (const sqlite::SqliteError& e) {
    if (e.busy()) {
      spdlog::warn("sagejit cache: could not {} {}: busy for over {} s ({})", what, path.string(),
                   kCacheBusyTimeoutMs / 1000, e.what());
      return false;
    }
    fail(e.what());
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return false;
}

sqlite::Db open_cache_database(const fs::path& path) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  try {
    return connect(path);
  } catch (const UnusableDatabase& e) {
    const fs::path moved = move_aside(path);
    sqlite::Db db = connect(path);
    spdlog::warn("sagejit cache: {} was unusable ({}); moved it to {} and started a new cache",
                 path.string(), e.what(), moved.string());
    return db;
  }
}

}  // namespace sagejit
