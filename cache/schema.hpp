// schema.hpp — what a sagejit cache database is, and how one is opened.
//
// Owns the tables (`cubins`, and `tuning_records` for the autotuner), PRAGMA user_version, WAL
// mode and the busy timeout. How it fails: a file that is damaged, is not a sagejit cache or was
// written by a newer sagejit is moved aside to `<name>.corrupt-<unix time>` (with its -wal/-shm)
// and rebuilt, with one warning; when even that fails (say, the directory is not writable)
// open_cache_database throws.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "cache/sqlite_db.hpp"

namespace sagejit {

// Long enough to wait out another process storing into the same cache (a put is one short
// transaction); a put that still finds the database busy keeps its record in memory instead.
constexpr int kCacheBusyTimeoutMs = 10'000;

// Runs one disk operation of a cache store (`what`, e.g. "store a kernel in") on the database at
// `path` and says whether it succeeded. A database still busy after kCacheBusyTimeoutMs fails only
// this call, with a warning; any other error is passed to `fail` (the store stops using the disk
// and says so once). Nothing is thrown.
bool cache_disk_op(const std::filesystem::path& path, const char* what, const std::function<void()>& op,
                   const std::function<void(const char* why)>& fail);

// Opens the cache at `path`, creating its parent directories and the file as needed, with our
// schema. Throws sqlite::SqliteError, CacheError or std::filesystem::filesystem_error.
sqlite::Db open_cache_database(const std::filesystem::path& path);

// PRAGMA user_version of an open cache.
int cache_schema_version(sqlite::Db& db);

// The current UTC time as "2026-11-25T10:11:12.345Z", the created_at of every row.
std::string utc_now_iso();

}  // namespace sagejit
