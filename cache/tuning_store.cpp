// tuning_store.cpp — tuning records and winners in SQLite, and the in-memory store it falls back to.
//
// How it fails: never towards the caller. Open failures give an in-memory store (with a warning);
// a statement that fails after opening (other than busy) switches this store to memory for good,
// with one warning, keeping what it already read and everything written from then on.
#include "cache/tuning_store.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <tuple>

#include "cache/schema.hpp"
#include "cache/sqlite_db.hpp"

namespace sagejit {
namespace fs = std::filesystem;

namespace {

constexpr const char* kEnvColumns = "device_name, arch, sm_count, driver_version, nvrtc_version, template_hash";
constexpr const char* kEnvMatch =
    "device_name = ? AND arch = ? AND sm_count = ? AND driver_version = ? AND nvrtc_version = ? AND "
    "template_hash = ?";
constexpr const char* kRecordColumns =
    "device_name, arch, sm_count, driver_version, nvrtc_version, template_hash, problem_bucket, family, "
    "tile_config, spec, time_ms, spread, runs, status, reason, run_id, created_at";
constexpr const char* kWinnerColumns =
    "device_name, arch, sm_count, driver_version, nvrtc_version, template_hash, problem_bucket, family, "
    "tile_config, spec, time_ms, default_ms, run_id, created_at";

// Binds the six environment fields from `first` on; returns the next index.
int bind_env(sqlite::Stmt& q, int first, const TuningEnv& e) {
  q.bind(first, e.device_name).bind(first + 1, e.arch).bind(first + 2, e.sm_count);
  q.bind(first + 3, e.driver_version).bind(first + 4, e.nvrtc_version).bind(first + 5, e.template_hash);
  return first + 6;
}

TuningEnv read_env(const sqlite::Stmt& q) {
  return {q.text(0), q.text(1), q.int32(2), q.text(3), q.text(4), q.text(5)};
}

TuningRecord read_record(const sqlite::Stmt& q) {
  TuningRecord r;
  r.env = read_env(q);
  r.bucket = q.text(6), r.family = q.text(7), r.tile = q.text(8), r.spec = q.text(9);
  r.median_ms = q.optional_real(10);
  r.spread = q.real(11);
  r.runs = q.int32(12);
  r.status = q.text(13), r.reason = q.text(14), r.run_id = q.text(15), r.created_at = q.text(16);
  return r;
}

TuningWinner read_winner(const sqlite::Stmt& q) {
  TuningWinner w;
  w.env = read_env(q);
  w.bucket = q.text(6), w.family = q.text(7), w.tile = q.text(8), w.spec = q.text(9);
  w.median_ms = q.real(10);
  w.default_ms = q.optional_real(11);
  w.run_id = q.text(12), w.created_at = q.text(13);
  return w;
}

bool same_slot(const TuningWinner& w, const TuningEnv& env, const std::string& bucket) {
  return w.env == env && w.bucket == bucket;
}

auto env_tuple(const TuningEnv& e) {
  return std::tie(e.device_name, e.arch, e.sm_count, e.driver_version, e.nvrtc_version, e.template_hash);
}

void sort_winners(std::vector<TuningWinner>& ws) {
  std::sort(ws.begin(), ws.end(), [](const TuningWinner& a, const TuningWinner& b) {
    return std::tuple_cat(env_tuple(a.env), std::tie(a.bucket)) < std::tuple_cat(env_tuple(b.env), std::tie(b.bucket));
  });
}

class MemoryTuningStore final : public TuningStore {
 public:
  void put_records(const std::vector<TuningRecord>& records) override {
    std::lock_guard lock(mu_);
    for (TuningRecord r : records) {
      r.created_at = utc_now_iso();
      records_.push_back(std::move(r));
    }
  }
  TuningWinner put_winner(const TuningWinner& w) override {
    std::lock_guard lock(mu_);
    for (const TuningWinner& have : winners_) {
      if (same_slot(have, w.env, w.bucket)) return have;
    }
    TuningWinner stored = w;
    stored.created_at = utc_now_iso();
    winners_.push_back(stored);
    return stored;
  }
  std::optional<TuningWinner> winner(const TuningEnv& env, const std::string& bucket) override {
    std::lock_guard lock(mu_);
    for (const TuningWinner& w : winners_) {
      if (same_slot(w, env, bucket)) return w;
    }
    return std::nullopt;
  }
  std::vector<TuningRecord> records(const TuningEnv& env, const std::string& bucket) override {
    std::lock_guard lock(mu_);
    std::vector<TuningRecord> out;
    for (const TuningRecord& r : records_) {
      if (r.env == env && r.bucket == bucket) out.push_back(r);
    }
    return out;
  }
  std::vector<TuningRecord> all_records() override {
    std::lock_guard lock(mu_);
    return records_;
  }
  std::vector<TuningWinner> winners() override {
    std::lock_guard lock(mu_);
    std::vector<TuningWinner> out = winners_;
    sort_winners(out);
    return out;
  }
  std::int64_t forget(const TuningEnv& env, const std::string& bucket) override {
    std::lock_guard lock(mu_);
    const auto before = records_.size() + winners_.size();
    std::erase_if(records_, [&](const TuningRecord& r) { return r.env == env && r.bucket == bucket; });
    std::erase_if(winners_, [&](const TuningWinner& w) { return same_slot(w, env, bucket); });
    return static_cast<std::int64_t>(before - records_.size() - winners_.size());
  }
  std::int64_t prune(const std::function<bool(const TuningEnv&)>& stale) override {
    std::lock_guard lock(mu_);
    const auto before = records_.size() + winners_.size();
    std::erase_if(records_, [&](const TuningRecord& r) { return stale(r.env); });
    std::erase_if(winners_, [&](const TuningWinner& w) { return stale(w.env); });
    return static_cast<std::int64_t>(before - records_.size() - winners_.size());
  }

 private:
  std::mutex mu_;
  std::vector<TuningRecord> records_;
  std::vector<TuningWinner> winners_;
};

class SqliteTuningStore final : public TuningStore {
 public:
  SqliteTuningStore(fs::path path, sqlite::Db db) : path_(std::move(path)), db_(std::move(db)) {}

  void put_records(const std::vector<TuningRecord>& records) override {
    std::lock_guard lock(mu_);
    if (disk_ && on_disk("write tuning records to", [&] { insert_records(records); })) return;
    memory_.put_records(records);
  }

  TuningWinner put_winner(const TuningWinner& w) override {
    std::lock_guard lock(mu_);
    std::optional<TuningWinner> stored;
    if (disk_ && on_disk("write a tuning winner to", [&] { stored = insert_winner(w); })) return *stored;
    return memory_.put_winner(w);
  }

  std::optional<TuningWinner> winner(const TuningEnv& env, const std::string& bucket) override {
    std::lock_guard lock(mu_);
    if (auto w = memory_.winner(env, bucket)) return w;
    std::optional<TuningWinner> found;
    if (disk_) on_disk("read a tuning winner from", [&] {
      auto q = db_.prepare(fmt::format("SELECT {} FROM tuning_winners WHERE {} AND problem_bucket = ?", kWinnerColumns,
                                       kEnvMatch));
      q.bind(bind_env(q, 1, env), bucket);
      if (q.step()) found = read_winner(q);
    });
    return found;
  }

  std::vector<TuningRecord> records(const TuningEnv& env, const std::string& bucket) override {
    std::lock_guard lock(mu_);
    const std::string sql = fmt::format("SELECT {} FROM tuning_records WHERE {} AND problem_bucket = ? ORDER BY id",
                                        kRecordColumns, kEnvMatch);
    return disk_then_memory("read tuning records from", sql, [&](sqlite::Stmt& q) { q.bind(bind_env(q, 1, env), bucket); },
                            read_record, memory_.records(env, bucket));
  }

  std::vector<TuningRecord> all_records() override {
    std::lock_guard lock(mu_);
    return disk_then_memory("read tuning records from",
                            fmt::format("SELECT {} FROM tuning_records ORDER BY id", kRecordColumns),
                            [](sqlite::Stmt&) {}, read_record, memory_.all_records());
  }

  std::vector<TuningWinner> winners() override {
    std::lock_guard lock(mu_);
    std::vector<TuningWinner> out =
        disk_then_memory("read tuning winners from", fmt::format("SELECT {} FROM tuning_winners", kWinnerColumns),
                         [](sqlite::Stmt&) {}, read_winner, memory_.winners());
    sort_winners(out);
    return out;
  }

  std::int64_t forget(const TuningEnv& env, const std::string& bucket) override {
    std::lock_guard lock(mu_);
    std::int64_t n = memory_.forget(env, bucket);
    if (disk_) on_disk("delete tuning rows from", [&] {
      sqlite::Transaction tx(db_);
      for (const char* table : {"tuning_records", "tuning_winners"}) {
        auto q = db_.prepare(fmt::format("DELETE FROM {} WHERE {} AND problem_bucket = ?", table, kEnvMatch));
        q.bind(bind_env(q, 1, env), bucket);
        q.run();
        n += db_.changes();
      }
      tx.commit();
    });
    return n;
  }

  std::int64_t prune(const std::function<bool(const TuningEnv&)>& stale) override {
    std::lock_guard lock(mu_);
    std::int64_t n = memory_.prune(stale);
    if (disk_) on_disk("prune tuning rows from", [&] {
      sqlite::Transaction tx(db_);
      for (const char* table : {"tuning_records", "tuning_winners"}) {
        std::vector<TuningEnv> doomed;
        {
          auto q = db_.prepare(fmt::format("SELECT DISTINCT {} FROM {}", kEnvColumns, table));
          while (q.step()) {
            if (TuningEnv e = read_env(q); stale(e)) doomed.push_back(e);
          }
        }
        for (const TuningEnv& e : doomed) {
          auto q = db_.prepare(fmt::format("DELETE FROM {} WHERE {}", table, kEnvMatch));
          bind_env(q, 1, e);
          q.run();
          n += db_.changes();
        }
      }
      tx.commit();
    });
    return n;
  }

 private:
  // The rows `sql` selects from the database (while it is in use; `bind` fills its parameters),
  // then `memory_rows` (what could not be written there).
  template <class Row, class Bind>
  std::vector<Row> disk_then_memory(const char* what, const std::string& sql, Bind&& bind,
                                    Row (*read)(const sqlite::Stmt&), std::vector<Row> memory_rows) {
    std::vector<Row> out;
    if (disk_) on_disk(what, [&] {
      auto q = db_.prepare(sql);
      bind(q);
      while (q.step()) out.push_back(read(q));
    });
    for (Row& r : memory_rows) out.push_back(std::move(r));
    return out;
  }

  // Runs one disk operation and says whether it succeeded (busy: this call only; any other error:
  // tuning results stay in memory from then on, with one warning).
  template <class Op>
  bool on_disk(const char* what, Op&& op) {
    return cache_disk_op(path_, what, op, [&](const char* why) { stop(what, why); });
  }

  void stop(const char* what, const char* why) {
    disk_ = false;
    spdlog::warn("sagejit cache: could not {} {} ({}); tuning results are kept in memory for the rest of this "
                 "process", what, path_.string(), why);
  }

  void insert_records(const std::vector<TuningRecord>& records) {
    sqlite::Transaction tx(db_);
    const std::string now = utc_now_iso();
    for (const TuningRecord& r : records) {
      auto q = db_.prepare(fmt::format("INSERT INTO tuning_records ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                       "?, ?, ?, ?)", kRecordColumns));
      int i = bind_env(q, 1, r.env);
      q.bind(i, r.bucket).bind(i + 1, r.family).bind(i + 2, r.tile).bind(i + 3, r.spec).bind(i + 4, r.median_ms);
      q.bind(i + 5, r.spread).bind(i + 6, r.runs).bind(i + 7, r.status).bind(i + 8, r.reason);
      q.bind(i + 9, r.run_id).bind(i + 10, now);
      q.run();
    }
    tx.commit();
  }

  // INSERT OR IGNORE and the read back share one write transaction, so two processes storing a
  // winner for the same slot at once both get the first one.
  TuningWinner insert_winner(const TuningWinner& w) {
    sqlite::Transaction tx(db_);
    {
      auto q = db_.prepare(fmt::format("INSERT OR IGNORE INTO tuning_winners ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                       "?, ?, ?, ?, ?)", kWinnerColumns));
      int i = bind_env(q, 1, w.env);
      q.bind(i, w.bucket).bind(i + 1, w.family).bind(i + 2, w.tile).bind(i + 3, w.spec).bind(i + 4, w.median_ms);
      q.bind(i + 5, w.default_ms).bind(i + 6, w.run_id).bind(i + 7, utc_now_iso());
      q.run();
    }
    TuningWinner stored;
    {
      auto q = db_.prepare(fmt::format("SELECT {} FROM tuning_winners WHERE {} AND problem_bucket = ?", kWinnerColumns,
                                       kEnvMatch));
      q.bind(bind_env(q, 1, w.env), w.bucket);
      if (!q.step()) throw CacheError("a tuning winner vanished inside its own transaction");
      stored = read_winner(q);
    }
    tx.commit();
    return stored;
  }

  std::mutex mu_;
  fs::path path_;
  sqlite::Db db_;
  MemoryTuningStore memory_;
  bool disk_ = true;
};

}  // namespace

std::unique_ptr<TuningStore> TuningStore::open(const fs::path& path) {
  try {
    return std::make_unique<SqliteTuningStore>(path, open_cache_database(path));
  } catch (const std::exception& e) {
    spdlog::warn("sagejit cache: cannot use {} for tuning records ({}); they are kept in memory for this process",
                 path.string(), e.what());
    return in_memory();
  }
}

std::unique_ptr<TuningStore> TuningStore::in_memory() { return std::make_unique<MemoryTuningStore>(); }

std::string new_tuning_run_id() {
  static std::atomic<int> counter{0};
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
  return fmt::format("{}-{}-{}", us, getpid(), counter++);
}

}  // namespace sagejit
