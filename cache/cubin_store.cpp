// cubin_store.cpp — the SQLite cubin store and the in-memory store it falls back to.
//
// Owns reading and writing cubin rows, their checksums, and degrading to memory; opening the file
// and its schema live in schema.cpp. How it fails: never towards the caller. When the database
// cannot be opened even after moving a damaged one aside, open() returns an in-memory store. After
// opening, a write that fails turns disk writes off for good (one warning) and later records go to
// memory, while rows already on disk stay readable: a record that was `put` is never lost for the
// life of the process.
#include "cache/cubin_store.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <tuple>

#include "cache/schema.hpp"
#include "cache/sqlite_db.hpp"
#include "runtime/hash.hpp"

namespace sagejit {
namespace fs = std::filesystem;

namespace {

// Column order shared by every SELECT of a row (see the table in schema.cpp); the blob and
// checksum follow when loading.
constexpr const char* kRowColumns =
    "digest, spec, template_hash, generator_version, nvrtc_version, options, arch, lowered_name, "
    "registers, stack_frame, spill_stores, spill_loads, shared_static, constant, compile_ms, "
    "bytes, created_at";
constexpr int kBlobColumn = 17;
constexpr int kChecksumColumn = 18;

std::string checksum(const std::vector<char>& blob) {
  return hex64(fnv1a64(blob.data(), blob.size()));
}

bool same_key(const CubinKey& a, const CubinKey& b) {
  return a.spec == b.spec && a.template_hash == b.template_hash &&
         a.generator_version == b.generator_version && a.nvrtc_version == b.nvrtc_version &&
         a.options == b.options && a.arch == b.arch;
}

CubinRow row_of(const CubinRecord& r, std::string created_at) {
  return {r.key.digest(), r.key, r.lowered_name, r.usage, r.compile_ms,
          static_cast<std::int64_t>(r.cubin.size()), std::move(created_at)};
}

CubinRow read_row(const sqlite::Stmt& q) {
  CubinRow row;
  row.digest = q.text(0);
  row.key = {q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)};
  row.lowered_name = q.text(7);
  row.usage = {q.int32(8), q.int32(9), q.int32(10), q.int32(11), q.int32(12), q.int32(13)};
  row.compile_ms = q.real(14);
  row.bytes = q.int64(15);
  row.created_at = q.text(16);
  return row;
}

void sort_rows(std::vector<CubinRow>& rows) {
  std::sort(rows.begin(), rows.end(), [](const CubinRow& a, const CubinRow& b) {
    return std::tie(a.created_at, a.key.spec) < std::tie(b.created_at, b.key.spec);
  });
}

std::int64_t size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<std::int64_t>(n);
}

class MemoryStore final : public CubinStore {
 public:
  std::optional<CubinRecord> get(const CubinKey& key) override {
    std::lock_guard lock(mu_);
    auto it = rows_.find(key.digest());
    if (it == rows_.end() || !same_key(it->second.record.key, key)) return std::nullopt;
    return it->second.record;
  }
  void put(const CubinRecord& record) override {
    std::lock_guard lock(mu_);
    rows_[record.key.digest()] = {record, utc_now_iso()};
  }
  std::vector<CubinRow> list() override {
    std::lock_guard lock(mu_);
    std::vector<CubinRow> rows;
    for (const auto& [digest, e] : rows_) rows.push_back(row_of(e.record, e.created_at));
    sort_rows(rows);
    return rows;
  }
  std::int64_t clear() override {
    std::lock_guard lock(mu_);
    const auto n = static_cast<std::int64_t>(rows_.size());
    rows_.clear();
    return n;
  }
  std::int64_t remove(const std::vector<std::string>& digests) override {
    std::lock_guard lock(mu_);
    std::int64_t n = 0;
    for (const std::string& d : digests) n += static_cast<std::int64_t>(rows_.erase(d));
    return n;
  }
  StoreInfo info() override {
    std::lock_guard lock(mu_);
    return {{}, true, 0, static_cast<std::int64_t>(rows_.size()), kCacheSchemaVersion};
  }

 private:
  struct Entry {
    CubinRecord record;
    std::string created_at;
  };
  std::mutex mu_;
  std::map<std::string, Entry> rows_;
};

// The database, plus `memory_` for records the disk did not take (after a write failure, or when
// another process kept it busy past the timeout). Lookups try memory first, then the disk.
class SqliteStore final : public CubinStore {
 public:
  SqliteStore(fs::path path, sqlite::Db db) : path_(std::move(path)), db_(std::move(db)) {}

  std::optional<CubinRecord> get(const CubinKey& key) override {
    std::lock_guard lock(mu_);
    if (auto hit = memory_.get(key)) return hit;
    std::optional<CubinRecord> found;
    if (read_disk_) on_disk("read from", [&] { found = load(key); });
    return found;
  }

  void put(const CubinRecord& record) override {
    std::lock_guard lock(mu_);
    if (write_disk_ && on_disk("write to", [&] { store(record); })) return;
    memory_.put(record);
  }

  std::vector<CubinRow> list() override {
    std::lock_guard lock(mu_);
    return list_locked();
  }

  std::int64_t clear() override {
    std::lock_guard lock(mu_);
    std::int64_t n = memory_.clear();
    if (write_disk_) on_disk("clear", [&] { n += delete_all(); });
    // Rows we could not delete must not come back in later lookups.
    if (!write_disk_) read_disk_ = false;
    return n;
  }

  std::int64_t remove(const std::vector<std::string>& digests) override {
    std::lock_guard lock(mu_);
    std::int64_t n = memory_.remove(digests);
    if (write_disk_) on_disk("remove cubins from", [&] {
      sqlite::Transaction tx(db_);
      for (const std::string& d : digests) {
        db_.prepare("DELETE FROM cubins WHERE digest = ?").bind(1, d).run();
        n += db_.changes();
      }
      tx.commit();
    });
    return n;
  }

  StoreInfo info() override {
    std::lock_guard lock(mu_);
    StoreInfo i{path_, !write_disk_, 0, 0, kCacheSchemaVersion};
    i.file_bytes = size_or_zero(path_) + size_or_zero(fs::path(path_) += "-wal");
    i.cubin_rows = static_cast<std::int64_t>(list_locked().size());
    if (read_disk_) {
      on_disk("read the schema version of", [&] { i.schema_version = cache_schema_version(db_); });
    }
    return i;
  }

 private:
  // Runs one disk operation and says whether it succeeded. Busy fails only this call. Any other
  // error turns disk writes off for good, with one warning; reads of rows already there go on.
  template <class Op>
  bool on_disk(const char* what, Op&& op) {
    return cache_disk_op(path_, what, op, [&](const char* why) { stop_writing(what, why); });
  }

  // Damage found after opening (SQLite checks pages only as it reads them) is not moved aside
  // here: renaming a database under open connections is itself a way to corrupt it in SQLite (a
  // closing connection unlinks `<path>-wal` by name, which may by then be a new database's log).
  void stop_writing(const char* what, const char* why) {
    if (!write_disk_) return;
    write_disk_ = false;
    spdlog::warn("sagejit cache: could not {} {} ({}); new kernels are kept in memory for the rest "
                 "of this process", what, path_.string(), why);
  }

  std::optional<CubinRecord> load(const CubinKey& key) {
    const std::string digest = key.digest();
    CubinRecord record;
    std::string stored_sum;
    {
      auto q = db_.prepare(
          fmt::format("SELECT {}, blob, checksum FROM cubins WHERE digest = ?", kRowColumns));
      q.bind(1, digest);
      if (!q.step()) return std::nullopt;
      CubinRow row = read_row(q);
      // The digest is only a hash: a row for another key that collides with ours is a miss.
      if (!same_key(row.key, key)) return std::nullopt;
      record = {row.key, row.lowered_name, q.blob(kBlobColumn), row.usage, row.compile_ms};
      stored_sum = q.text(kChecksumColumn);
    }
    if (checksum(record.cubin) == stored_sum) return record;
    spdlog::warn("sagejit cache: cubin {} ({}) in {} fails its checksum; deleting it", key.spec,
                 digest, path_.string());
    if (write_disk_) on_disk("delete a corrupt cubin from", [&] {
      db_.prepare("DELETE FROM cubins WHERE digest = ?").bind(1, digest).run();
    });
    return std::nullopt;
  }

  void store(const CubinRecord& r) {
    sqlite::Transaction tx(db_);
    auto q = db_.prepare(
        "INSERT OR REPLACE INTO cubins (digest, spec, template_hash, generator_version, "
        "nvrtc_version, options, arch, lowered_name, blob, checksum, registers, stack_frame, "
        "spill_stores, spill_loads, shared_static, constant, compile_ms, bytes, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const CubinKey& k = r.key;
    const ResourceUsage& u = r.usage;
    q.bind(1, k.digest()).bind(2, k.spec).bind(3, k.template_hash).bind(4, k.generator_version);
    q.bind(5, k.nvrtc_version).bind(6, k.options).bind(7, k.arch).bind(8, r.lowered_name);
    q.bind_blob(9, r.cubin).bind(10, checksum(r.cubin));
    q.bind(11, u.registers).bind(12, u.stack_frame).bind(13, u.spill_stores);
    q.bind(14, u.spill_loads).bind(15, u.shared_static).bind(16, u.constant);
    q.bind(17, r.compile_ms);
    q.bind(18, static_cast<std::int64_t>(r.cubin.size())).bind(19, utc_now_iso());
    q.run();
    tx.commit();
  }

  std::int64_t delete_all() {
    sqlite::Transaction tx(db_);
    db_.exec("DELETE FROM cubins");
    const std::int64_t n = db_.changes();
    tx.commit();
    return n;
  }

  std::vector<CubinRow> list_locked() {
    std::map<std::string, CubinRow> by_digest;
    if (read_disk_) on_disk("list", [&] {
      auto q = db_.prepare(fmt::format("SELECT {} FROM cubins", kRowColumns));
      while (q.step()) {
        CubinRow row = read_row(q);
        by_digest.insert_or_assign(row.digest, std::move(row));
      }
    });
    for (CubinRow& row : memory_.list()) by_digest.insert_or_assign(row.digest, std::move(row));
    std::vector<CubinRow> rows;
    for (auto& [digest, row] : by_digest) rows.push_back(std::move(row));
    sort_rows(rows);
    return rows;
  }

  std::mutex mu_;
  fs::path path_;
  sqlite::Db db_;
  MemoryStore memory_;
  bool write_disk_ = true;
  bool read_disk_ = true;
};

}  // namespace

std::string CubinKey::digest() const {
  // Fields are separated by the unit separator, which no spec, version, option or arch contains,
  // so moving text from one field to the next changes the digest.
  constexpr std::string_view kSep = "\x1f";
  std::uint64_t h = kFnvOffset;
  for (const std::string* field :
       {&spec, &template_hash, &generator_version, &nvrtc_version, &options, &arch}) {
    h = fnv1a64(kSep, fnv1a64(*field, h));
  }
  return hex64(h);
}

std::unique_ptr<CubinStore> CubinStore::open(const fs::path& path) {
  try {
    return std::make_unique<SqliteStore>(path, open_cache_database(path));
  } catch (const std::exception& e) {
    spdlog::warn("sagejit cache: cannot use {} ({}); kernels are cached in memory for this process",
                 path.string(), e.what());
    return in_memory();
  }
}

std::unique_ptr<CubinStore> CubinStore::in_memory() { return std::make_unique<MemoryStore>(); }

}  // namespace sagejit
