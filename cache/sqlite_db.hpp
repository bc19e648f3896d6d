// sqlite_db.hpp — a thin RAII layer over one sqlite3 connection and its prepared statements.
//
// Owns the connection (closed by the destructor) and each statement (finalized by its destructor),
// so every failure path frees them. Nothing here knows the cache schema.
// How it fails: every SQLite error is thrown as a SqliteError (a CacheError) that keeps SQLite's
// primary result code and message, so the store can tell a damaged file (move it aside), a busy
// one (try later) and anything else (degrade to memory) apart.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace sagejit::sqlite {

class SqliteError : public CacheError {
 public:
  SqliteError(int code, const std::string& message);
  int code() const { return code_; }  // primary result code: SQLITE_BUSY, SQLITE_CORRUPT, ...
  // The file is damaged or is not a database at all; moving it aside fixes that.
  bool corrupt() const { return code_ == SQLITE_CORRUPT || code_ == SQLITE_NOTADB; }
  // Another connection held the lock past the busy timeout; the next call may succeed.
  bool busy() const { return code_ == SQLITE_BUSY || code_ == SQLITE_LOCKED; }

 private:
  int code_;
};

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  Stmt& bind(int index, std::string_view text);
  Stmt& bind(int index, std::int64_t value);
  Stmt& bind(int index, int value) { return bind(index, std::int64_t{value}); }
  Stmt& bind(int index, double value);
  Stmt& bind_blob(int index, const std::vector<char>& blob);
  // NULL when `value` is unset.
  Stmt& bind(int index, const std::optional<double>& value);
  bool step();  // true when a row is ready, false when done
  void run() { while (step()) {} }

  std::string text(int column) const;
  std::vector<char> blob(int column) const;
  std::int64_t int64(int column) const;
  int int32(int column) const { return static_cast<int>(int64(column)); }
  double real(int column) const;
  std::optional<double> optional_real(int column) const;  // unset for NULL

 private:
  struct Finalize { void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); } };
  void check(int rc) const;

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
};

class Db {
 public:
  // Opens, creating if needed. The caller serializes use (the store holds a mutex), so the
  // connection is opened without SQLite's own per-connection mutex.
  Db(const std::filesystem::path& path, int busy_timeout_ms);
  void exec(std::string_view sql);  // statements without results, `;`-separated
  Stmt prepare(std::string_view sql) { return Stmt(db_.get(), sql); }
  // The first column of the first row, as text ("" when there is none). The statement is done
  // when this returns: one left mid-step would keep a transaction from committing.
  std::string scalar(std::string_view sql) {
    Stmt q = prepare(sql);
    return q.step() ? q.text(0) : std::string();
  }
  std::int64_t changes() const { return sqlite3_changes64(db_.get()); }

 private:
  struct Close { void operator()(sqlite3* db) const { sqlite3_close_v2(db); } };
  std::unique_ptr<sqlite3, Close> db_;
};

// BEGIN IMMEDIATE takes the write lock up front, so waiting for another writer goes through the
// busy timeout instead of failing at once on a read-to-write lock upgrade. Rolls back unless
// commit() was reached.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace sagejit::sqlite
