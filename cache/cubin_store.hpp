// cubin_store.hpp — the SQLite store of compiled kernels (cubins); tuning records are in
// cache/tuning_store.hpp, in the same database.
//
// A cubin's key covers everything that changes the binary: canonical spec, template hash,
// generator version, NVRTC version, compile options and target arch. The fields are columns, so
// `sagejit cache list` is readable and stale rows can be queried. Each blob carries a checksum that
// is verified on load; a mismatching row is deleted and reported as a miss.
//
// How it fails: never towards the caller. A database that cannot be opened, is corrupt or is not a
// sagejit database is moved aside (renamed `<name>.corrupt-<time>`) and rebuilt, with a warning; if
// even that fails, or a write fails later, the store degrades to memory with one warning and keeps
// every record it was given for the life of the process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sagejit {

struct CubinKey {
  std::string spec;               // canonical spec name
  std::string template_hash;      // embedded_templates_hash()
  std::string generator_version;  // kGeneratorVersion
  std::string nvrtc_version;      // "13.0"
  std::string options;            // the NVRTC options, space-joined, in order
  std::string arch;               // "sm_90a"

  // Hex FNV-1a over all fields (separated by \x1f): the primary key of a row.
  std::string digest() const;
};

struct ResourceUsage {
  int registers = -1;        // per thread; -1 when ptxas did not report it
  int stack_frame = 0;       // bytes
  int spill_stores = 0;      // bytes
  int spill_loads = 0;       // bytes
  int shared_static = 0;     // bytes of static shared memory
  int constant = 0;          // bytes of cmem[0]
  bool spills() const { return spill_stores > 0 || spill_loads > 0; }
};

struct CubinRecord {
  CubinKey key;
  std::string lowered_name;   // the mangled kernel symbol, from nvrtcGetLoweredName
  std::vector<char> cubin;
  ResourceUsage usage;
  double compile_ms = 0;
};

// One row of `cache list`: everything but the blob.
struct CubinRow {
  std::string digest;
  CubinKey key;
  std::string lowered_name;
  ResourceUsage usage;
  double compile_ms = 0;
  std::int64_t bytes = 0;
  std::string created_at;     // UTC, ISO 8601
};

struct StoreInfo {
  std::filesystem::path path;  // the database file; empty for a store that never had one
  bool in_memory = false;      // true when disk caching is off or the database failed (then new
                               // records stay in memory; rows already in `path` are still read)
  std::int64_t file_bytes = 0; // database file plus its -wal
  std::int64_t cubin_rows = 0;
  int schema_version = 0;
};

class CubinStore {
 public:
  // Opens (creating if needed) the database at `path`: WAL mode, busy timeout, schema checked
  // through PRAGMA user_version. Never throws for cache failures (see the file comment).
  static std::unique_ptr<CubinStore> open(const std::filesystem::path& path);
  // A store that keeps everything in memory (SAGEJIT_CACHE=0).
  static std::unique_ptr<CubinStore> in_memory();

  virtual ~CubinStore() = default;
  virtual std::optional<CubinRecord> get(const CubinKey& key) = 0;
  virtual void put(const CubinRecord& record) = 0;
  virtual std::vector<CubinRow> list() = 0;
  // Removes every cubin row; returns how many.
  virtual std::int64_t clear() = 0;
  // Removes the rows with these digests (`sagejit cache prune`); returns how many.
  virtual std::int64_t remove(const std::vector<std::string>& digests) = 0;
  virtual StoreInfo info() = 0;
};

// The schema version this build writes (PRAGMA user_version).
constexpr int kCacheSchemaVersion = 2;  // 2: tuning_records with run, family and spread; tuning_winners

}  // namespace sagejit
