// schema.hpp — what a sagejit cache database is, and how one is opened.
//
// Owns the tables (`cubins`, and `tuning_records` for the autotuner), PRAGMA user_version, WAL
// mode and the busy timeout. How it fails: a file that is damaged, is not a sagejit cache or was
// written by a newer sagejit is moved aside to `<name>.corrupt-<unix time>` (with its -wal/-shm)
// and rebuilt, with one warning; when even that fails (say, the directory is not writable)
// open_cache_database throws.
#pragma once

#include <filesystem>
#include <string>

#include "cache/sqlite_db.hpp"

namespace sagejit {

// Long enough to wait out another process storing into the same cache (a put is one short
// transaction); a put that still finds the database busy keeps its record in memory instead.
constexpr int kCacheBusyTimeoutMs = 10'000;

// Opens the cache at `path`, creating its parent directories and the file as needed, with our
// schema. Throws sqlite::SqliteError, CacheError or std::filesystem::filesystem_error.
sqlite::Db open_cache_database(const std::filesystem::path& path);

// PRAGMA user_version of an open cache.
int cache_schema_version(sqlite::Db& db);

// The current UTC time as "2026-11-25T10:11:12.345Z", the created_at of every row.
std::string utc_now_iso();

}  // namespace sagejit
