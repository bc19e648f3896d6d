// test_cubin_store.cpp — the SQLite cubin store: round trip, invalidation, persistence,
// integrity, recovery from damaged files and unwritable places, and two processes writing at once.
//
// Each test works in its own directory under the system temp directory, removed at the end. The
// raw sqlite3 API is used to inspect or damage the database behind the store's back.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "cache/cubin_store.hpp"
#include "tests/cpu/support.hpp"

namespace fs = std::filesystem;
using namespace sagejit;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("cache-test") {}
};

// Counts the warnings logged while it lives, by swapping spdlog's default logger.
struct WarningCapture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  WarningCapture() {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~WarningCapture() { spdlog::set_default_logger(previous); }
  std::vector<std::string> warnings() {
    std::vector<std::string> out;
    for (const auto& m : sink->last_raw()) {
      if (m.level == spdlog::level::warn) out.emplace_back(m.payload.data(), m.payload.size());
    }
    return out;
  }
};

CubinRecord make_record(int i, std::size_t bytes = 4096) {
  CubinRecord r;
  r.key = {fmt::format("qk_int8_pv_fp8_hd128_causal_{}", i), "tmpl0123", "gen-3", "12.8",
           "-std=c++17 --use_fast_math", "sm_90a"};
  r.lowered_name = fmt::format("_Z6attnILi{}EEvv", i);
  r.cubin.resize(bytes);
  // Every byte value, NULs included.
  for (std::size_t j = 0; j < bytes; ++j) r.cubin[j] = static_cast<char>((j * 31 + i) % 256);
  r.usage = {128 + i % 4, 16, i % 2 ? 8 : 0, 0, 1024, 352};
  r.compile_ms = 1234.5 + i;
  return r;
}

void check_same(const CubinRecord& got, const CubinRecord& want) {
  CHECK(got.key.digest() == want.key.digest());
  CHECK(got.key.spec == want.key.spec);
  CHECK(got.lowered_name == want.lowered_name);
  CHECK(got.cubin == want.cubin);
  CHECK(got.usage.registers == want.usage.registers);
  CHECK(got.usage.stack_frame == want.usage.stack_frame);
  CHECK(got.usage.spill_stores == want.usage.spill_stores);
  CHECK(got.usage.spill_loads == want.usage.spill_loads);
  CHECK(got.usage.shared_static == want.usage.shared_static);
  CHECK(got.usage.constant == want.usage.constant);
  CHECK(got.compile_ms == want.compile_ms);
}

// A raw connection for looking behind the store's back.
struct RawDb {
  sqlite3* db = nullptr;
  explicit RawDb(const fs::path& p) { REQUIRE(sqlite3_open(p.c_str(), &db) == SQLITE_OK); }
  ~RawDb() { sqlite3_close(db); }
  std::string text(const char* sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }
  void exec(const char* sql) {
    REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  }
};

// The databases moved aside in `dir` (not their -wal/-shm companions).
std::vector<fs::path> moved_aside(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool companion = name.ends_with("-wal") || name.ends_with("-shm");
    if (name.find(".corrupt-") != std::string::npos && !companion) out.push_back(e.path());
  }
  return out;
}

}  // namespace

TEST_CASE("cubin store: put then get returns the record; a key differing in any field misses") {
  TempDir dir;
  for (bool on_disk : {true, false}) {
    CAPTURE(on_disk);
    auto store = on_disk ? CubinStore::open(dir.path / "cache.db") : CubinStore::in_memory();
    REQUIRE(store->info().in_memory == !on_disk);
    const CubinRecord rec = make_record(7);
    CHECK_FALSE(store->get(rec.key));
    store->put(rec);
    auto got = store->get(rec.key);
    REQUIRE(got);
    check_same(*got, rec);

    for (auto field : {&CubinKey::spec, &CubinKey::template_hash, &CubinKey::generator_version,
                       &CubinKey::nvrtc_version, &CubinKey::options, &CubinKey::arch}) {
      CubinKey other = rec.key;
      other.*field += "x";
      CAPTURE(other.*field);
      CHECK(other.digest() != rec.key.digest());
      CHECK_FALSE(store->get(other));
    }
    // Moving a character between fields must change the digest (fields are separated).
    CubinKey shifted = rec.key;
    shifted.spec += shifted.template_hash.substr(0, 1);
    shifted.template_hash.erase(0, 1);
    CHECK(shifted.digest() != rec.key.digest());

    // put again replaces: one row, newest contents.
    CubinRecord newer = rec;
    newer.cubin.assign(100, 'z');
    store->put(newer);
    CHECK(store->get(rec.key)->cubin == newer.cubin);
    CHECK(store->info().cubin_rows == 1);
  }
}

TEST_CASE("cubin store: a row whose key fields disagree with its digest is a miss") {
  TempDir dir;
  const auto path = dir.path / "cache.db";
  const CubinRecord rec = make_record(1);
  CubinStore::open(path)->put(rec);
  RawDb(path).exec("UPDATE cubins SET nvrtc_version = '11.8'");  // as if two keys collided
  CHECK_FALSE(CubinStore::open(path)->get(rec.key));
}

TEST_CASE("cubin store: records persist across reopen; WAL and user_version are set") {
  TempDir dir;
  const auto path = dir.path / "nested" / "deeper" / "cache.db";  // parents are created
  const CubinRecord rec = make_record(3);
  CubinStore::open(path)->put(rec);

  auto store = CubinStore::open(path);
  auto got = store->get(rec.key);
  REQUIRE(got);
  check_same(*got, rec);
  StoreInfo info = store->info();
  CHECK(info.path == path);
  CHECK_FALSE(info.in_memory);
  CHECK(info.cubin_rows == 1);
  CHECK(info.schema_version == kCacheSchemaVersion);
  CHECK(info.file_bytes > static_cast<std::int64_t>(rec.cubin.size()));

  RawDb raw(path);
  CHECK(raw.text("PRAGMA user_version") == std::to_string(kCacheSchemaVersion));
  CHECK(raw.text("PRAGMA journal_mode") == "wal");
  CHECK(raw.text("SELECT arch || ' ' || nvrtc_version FROM cubins") == "sm_90a 12.8");
  CHECK(raw.text("SELECT count(*) FROM tuning_records") == "0");
}

TEST_CASE("cubin store: a database that is not one is moved aside and rebuilt, with a warning") {
  TempDir dir;
  const auto path = dir.path / "cache.db";
  CubinStore::open(path)->put(make_record(1));
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    for (int i = 0; i < 8192; ++i) f.put(static_cast<char>(i * 7 + 3));
  }
  WarningCapture log;
  auto store = CubinStore::open(path);
  CHECK_FALSE(store->info().in_memory);
  const auto moved = moved_aside(dir.path);
  REQUIRE(moved.size() == 1);
  CHECK(fs::file_size(moved[0]) == 8192);
  const auto warnings = log.warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find(moved[0].string()) != std::string::npos);

  const CubinRecord rec = make_record(2);
  CHECK_FALSE(store->get(make_record(1).key));
  store->put(rec);
  REQUIRE(store->get(rec.key));
  CHECK(CubinStore::open(path)->get(rec.key)->cubin == rec.cubin);
}

TEST_CASE("cubin store: a database from a newer sagejit, or someone else's, is moved aside") {
  TempDir dir;
  const auto path = dir.path / "cache.db";
  SUBCASE("newer schema") {
    CubinStore::open(path);
    RawDb(path).exec("PRAGMA user_version = 99");
  }
  SUBCASE("foreign database") { RawDb(path).exec("CREATE TABLE notes (x TEXT)"); }
  WarningCapture log;
  auto store = CubinStore::open(path);
  CHECK(moved_aside(dir.path).size() == 1);
  CHECK(log.warnings().size() == 1);
  CHECK(store->info().schema_version == kCacheSchemaVersion);
  CHECK_FALSE(store->info().in_memory);
}

TEST_CASE("cubin store: a blob that fails its checksum is a miss and its row is deleted") {
  TempDir dir;
  const auto path = dir.path / "cache.db";
  auto store = CubinStore::open(path);
  const CubinRecord rec = make_record(5);
  store->put(rec);
  {
    RawDb raw(path);
    std::vector<char> flipped = rec.cubin;
    flipped[1000] ^= 0x01;
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw.db, "UPDATE cubins SET blob = ?", -1, &s, nullptr) == SQLITE_OK);
    sqlite3_bind_blob(s, 1, flipped.data(), static_cast<int>(flipped.size()), SQLITE_TRANSIENT);
    REQUIRE(sqlite3_step(s) == SQLITE_DONE);
    sqlite3_finalize(s);
  }
  WarningCapture log;
  CHECK_FALSE(store->get(rec.key));
  CHECK(log.warnings().size() == 1);
  CHECK(RawDb(path).text("SELECT count(*) FROM cubins") == "0");
  CHECK_FALSE(store->info().in_memory);  // a bad row is not a bad database
}

TEST_CASE("cubin store: an unwritable location degrades to memory with one warning") {
  TempDir dir;
  const auto file = dir.path / "plain-file";
  std::ofstream(file) << "not a directory";
  WarningCapture log;
  auto store = CubinStore::open(file / "sub" / "cache.db");
  CHECK(log.warnings().size() == 1);
  StoreInfo info = store->info();
  CHECK(info.in_memory);
  CHECK(info.path.empty());
  const CubinRecord rec = make_record(9);
  store->put(rec);
  auto got = store->get(rec.key);
  REQUIRE(got);
  check_same(*got, rec);
  CHECK(log.warnings().size() == 1);
}

TEST_CASE("cubin store: a write that fails later keeps every record, in memory, with one warning") {
  // The failure is a file-size limit (EFBIG), which holds even for root; it runs in a child so the
  // limit does not outlive the test. The child reports through its exit status (bit per failure).
  TempDir dir;
  const auto path = dir.path / "cache.db";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int failed = 0;
    try {
      WarningCapture log;
      auto store = CubinStore::open(path);
      const CubinRecord small = make_record(1, 512), big = make_record(2, 1 << 20);
      const CubinRecord next = make_record(3);
      store->put(small);
      signal(SIGXFSZ, SIG_IGN);
      rlimit limit{256 << 10, 256 << 10};
      setrlimit(RLIMIT_FSIZE, &limit);
      store->put(big);
      store->put(next);
      if (!store->info().in_memory) failed |= 1;
      if (!store->get(small.key) || store->get(small.key)->cubin != small.cubin) failed |= 2;
      if (!store->get(big.key) || store->get(big.key)->cubin != big.cubin) failed |= 4;
      if (!store->get(next.key)) failed |= 8;
      if (store->list().size() != 3) failed |= 16;
      if (log.warnings().size() != 1) failed |= 32;
    } catch (...) {
      failed |= 64;
    }
    _exit(failed);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(CubinStore::open(path)->get(make_record(1, 512).key));  // what reached the disk stays
}

TEST_CASE("cubin store: two processes writing into one database at once lose nothing") {
  TempDir dir;
  const auto path = dir.path / "cache.db";
  constexpr int kChildren = 2, kPerChild = 200;
  int ready[2], go[2];
  REQUIRE(pipe(ready) == 0);
  REQUIRE(pipe(go) == 0);
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; ++c) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Barrier: say ready, then wait until the parent closes `go` (EOF releases all at once).
      // Both children create the database too, so its creation is raced as well.
      close(ready[0]);
      close(go[1]);
      char b = 'r';
      int failed = write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 0;
      try {
        auto store = CubinStore::open(path);
        for (int i = 0; i < kPerChild; ++i) store->put(make_record(c * 1000 + i, 2048 + i));
        failed |= store->info().in_memory;
      } catch (...) {
        failed = 1;
      }
      _exit(failed);
    }
    children.push_back(pid);
  }
  close(ready[1]);
  close(go[0]);
  char b;
  for (int c = 0; c < kChildren; ++c) CHECK(read(ready[0], &b, 1) == 1);
  close(go[1]);
  close(ready[0]);
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }

  auto store = CubinStore::open(path);
  CHECK(store->info().cubin_rows == kChildren * kPerChild);
  int valid = 0;
  for (int c = 0; c < kChildren; ++c) {
    for (int i = 0; i < kPerChild; ++i) {
      const CubinRecord want = make_record(c * 1000 + i, 2048 + i);
      auto got = store->get(want.key);
      valid += got && got->cubin == want.cubin && got->lowered_name == want.lowered_name;
    }
  }
  CHECK(valid == kChildren * kPerChild);
}

TEST_CASE("cubin store: list shows rows without blobs, in order; clear removes and counts them") {
  TempDir dir;
  for (bool on_disk : {true, false}) {
    CAPTURE(on_disk);
    auto store = on_disk ? CubinStore::open(dir.path / "cache.db") : CubinStore::in_memory();
    std::map<std::string, std::int64_t> bytes_of;  // by spec
    for (int i : {4, 2, 3}) {
      const CubinRecord rec = make_record(i, 1000 + i);
      store->put(rec);
      bytes_of[rec.key.spec] = static_cast<std::int64_t>(rec.cubin.size());
    }
    auto rows = store->list();
    REQUIRE(rows.size() == 3);
    for (std::size_t j = 0; j < rows.size(); ++j) {
      CHECK(rows[j].digest == rows[j].key.digest());
      CHECK(rows[j].bytes == bytes_of[rows[j].key.spec]);
      CHECK(rows[j].created_at.size() == 24);  // 2025-01-31T12:34:56.789Z
      if (j > 0) {
        CHECK(std::tie(rows[j - 1].created_at, rows[j - 1].key.spec) <
              std::tie(rows[j].created_at, rows[j].key.spec));
      }
    }
    CHECK(store->clear() == 3);
    CHECK(store->list().empty());
    CHECK(store->info().cubin_rows == 0);
    CHECK_FALSE(store->get(make_record(2).key));
    CHECK(store->clear() == 0);
  }
}

TEST_CASE("cubin store: threads sharing one store see every record") {
  TempDir dir;
  for (bool on_disk : {true, false}) {
    CAPTURE(on_disk);
    auto store = on_disk ? CubinStore::open(dir.path / "cache.db") : CubinStore::in_memory();
    std::atomic<int> hits{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          const CubinRecord rec = make_record(t * 100 + i, 512);
          store->put(rec);
          auto got = store->get(rec.key);
          hits += got && got->cubin == rec.cubin;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(hits == 200);
    CHECK(store->info().cubin_rows == 200);
  }
}
