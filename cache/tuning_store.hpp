// tuning_store.hpp — the SQLite store of tuning records (every timed or skipped candidate) and of
// the chosen variant per (environment, problem bucket).
//
// A record carries the environment it was measured in (GPU name, arch, SM count, driver, NVRTC
// version, template hash); lookups match all of it, so a record from another environment is never
// used. Winners are first-writer-wins: put_winner inserts only when the (environment, bucket) has
// none and returns the one stored, so concurrent tuners (ranks of a job, GPUs of a host) converge
// on one choice instead of each keeping its own.
//
// How it fails: never towards the caller. A database that cannot be opened is moved aside and
// rebuilt (cache/schema.cpp); if that fails, or a statement fails later, the store warns once and
// keeps going in memory for the rest of the process. A busy database fails only that call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sagejit {

struct TuningEnv {
  std::string device_name;     // "NVIDIA H100 80GB HBM3"
  std::string arch;            // "sm_90a"
  int sm_count = 0;
  std::string driver_version;  // "13.0"
  std::string nvrtc_version;   // "13.0"
  std::string template_hash;   // embedded_templates_hash()
  bool operator==(const TuningEnv&) const = default;
};

// One candidate of one run.
struct TuningRecord {
  TuningEnv env;
  std::string bucket;
  std::string family;   // "mma", "wgmma"
  std::string tile;     // AttnTile::name()
  std::string spec;     // canonical spec name
  std::optional<double> median_ms;  // unset unless status == "ok"
  double spread = 0;    // (p75 - p25) / median of its timed runs
  int runs = 0;
  std::string status;   // "ok", "invalid", "compile_error", "spills", "launch_error"
  std::string reason;   // why it was skipped, empty when ok
  std::string run_id;
  std::string created_at;  // set by the store
};

// The chosen variant of a bucket in an environment.
struct TuningWinner {
  TuningEnv env;
  std::string bucket;
  std::string family;
  std::string tile;
  std::string spec;
  double median_ms = 0;
  std::optional<double> default_ms;  // the heuristic default's median in the same run
  std::string run_id;
  std::string created_at;  // set by the store
};

class TuningStore {
 public:
  static std::unique_ptr<TuningStore> open(const std::filesystem::path& path);
  static std::unique_ptr<TuningStore> in_memory();
  virtual ~TuningStore() = default;

  virtual void put_records(const std::vector<TuningRecord>& records) = 0;
  // Stores `w` unless its (environment, bucket) already has a winner; returns the stored one.
  virtual TuningWinner put_winner(const TuningWinner& w) = 0;
  virtual std::optional<TuningWinner> winner(const TuningEnv& env, const std::string& bucket) = 0;
  // Every record of (env, bucket), oldest first.
  virtual std::vector<TuningRecord> records(const TuningEnv& env, const std::string& bucket) = 0;
  virtual std::vector<TuningRecord> all_records() = 0;
  virtual std::vector<TuningWinner> winners() = 0;
  // Removes the winner and records of (env, bucket) (a forced retune); returns the rows removed.
  virtual std::int64_t forget(const TuningEnv& env, const std::string& bucket) = 0;
  // Removes every record and winner whose environment `stale` accepts; returns the rows removed.
  virtual std::int64_t prune(const std::function<bool(const TuningEnv&)>& stale) = 0;
};

// A fresh run id: time, process id and a counter, unique across the processes of a host.
std::string new_tuning_run_id();

}  // namespace sagejit
