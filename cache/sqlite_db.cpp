// sqlite_db.cpp — the RAII wrapper over sqlite3: open, exec, prepare/bind/step/read.
//
// Every non-OK result code becomes a SqliteError carrying the primary code and SQLite's message.
#include "cache/sqlite_db.hpp"

#include <fmt/format.h>

namespace sagejit::sqlite {

namespace {
std::string describe(int code, const std::string& message) {
  const std::string name = sqlite3_errstr(code);
  return message == name ? "sqlite: " + message : fmt::format("sqlite: {} ({})", message, name);
}
}  // namespace

// An extended code (SQLITE_IOERR_WRITE, ...) keeps its primary code in the low byte.
SqliteError::SqliteError(int code, const std::string& message)
    : CacheError(describe(code, message)), code_(code & 0xff) {}

Db::Db(const std::filesystem::path& path, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db_.reset(raw);  // SQLite may hand back a handle even when opening failed: close it either way
  if (rc != SQLITE_OK) {
    throw SqliteError(rc, fmt::format("cannot open {}: {}", path.string(),
                                      raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
}

void Db::exec(std::string_view sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_.get(), std::string(sql).c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db_.get());
    sqlite3_free(message);
    throw SqliteError(rc, text);
  }
}

Transaction::~Transaction() {
  // Errors are ignored: a failed ROLLBACK means SQLite already rolled back on its own.
  if (!done_) {
    try { db_.exec("ROLLBACK"); } catch (const SqliteError&) {}
  }
}

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  stmt_.reset(raw);
  check(rc);
}

void Stmt::check(int rc) const {
  if (rc != SQLITE_OK) throw SqliteError(rc, sqlite3_errmsg(db_));
}

Stmt& Stmt::bind(int index, std::string_view text) {
  check(sqlite3_bind_text64(stmt_.get(), index, text.data(), text.size(), SQLITE_TRANSIENT,
                            SQLITE_UTF8));
  return *this;
}

Stmt& Stmt::bind(int index, std::int64_t value) {
  check(sqlite3_bind_int64(stmt_.get(), index, value));
  return *this;
}

Stmt& Stmt::bind(int index, double value) {
  check(sqlite3_bind_double(stmt_.get(), index, value));
  return *this;
}

Stmt& Stmt::bind_blob(int index, const std::vector<char>& blob) {
  // An empty vector's data() may be null, which SQLite would store as NULL rather than x''.
  static const char kEmpty = 0;
  check(sqlite3_bind_blob64(stmt_.get(), index, blob.empty() ? &kEmpty : blob.data(), blob.size(),
                            SQLITE_TRANSIENT));
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw SqliteError(rc, sqlite3_errmsg(db_));
}

std::string Stmt::text(int column) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), column));
  return p ? std::string(p, sqlite3_column_bytes(stmt_.get(), column)) : std::string();
}

std::vector<char> Stmt::blob(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), column));
  if (!p) return {};
  return std::vector<char>(p, p + sqlite3_column_bytes(stmt_.get(), column));
}

std::int64_t Stmt::int64(int column) const { return sqlite3_column_int64(stmt_.get(), column); }

double Stmt::real(int column) const { return sqlite3_column_double(stmt_.get(), column); }

std::optional<double> Stmt::optional_real(int column) const {
  if (sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL) return std::nullopt;
  return real(column);
}

Stmt& Stmt::bind(int index, const std::optional<double>& value) {
  if (!value) {
    check(sqlite3_bind_null(stmt_.get(), index));
    return *this;
  }
  return bind(index, *value);
}

}  // namespace sagejit::sqlite
