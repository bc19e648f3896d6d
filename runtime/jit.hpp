// jit.hpp — from a generated unit to a loaded kernel: in-process map → SQLite → compile → store.
//
// The cubin path needs no GPU (CI compiles every shipped variant through it); `kernel()` loads the
// cubin into the current CUDA context. Compile errors propagate as CompileError; a cache failure
// never does (the store degrades to memory). With SAGEJIT_JIT=0 a kernel that no cache holds is a
// NotAvailable naming its spec: never a silent compile.
#pragma once

#include <cuda.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/cubin_store.hpp"
#include "generator/unit.hpp"
#include "runtime/module.hpp"

namespace sagejit {

enum class CubinSource { memory, disk, compiled };
std::string_view name(CubinSource s);

struct CubinResult {
  CubinRecord record;
  CubinSource source = CubinSource::compiled;
  double ms = 0;  // time to obtain it (lookup, or lookup + compile + store)
};

class Jit {
 public:
  explicit Jit(std::unique_ptr<CubinStore> store, bool allow_compile = true);

  CubinResult cubin(const GeneratedUnit& unit);
  // Results in input order; misses compile in parallel on settings().compile_threads threads. The
  // first error is rethrown after every unit has finished.
  std::vector<CubinResult> cubins(const std::vector<GeneratedUnit>& units);
  // The kernel loaded into the current context (retaining device 0's primary context if the
  // thread has none). `source`, if given, says where the cubin came from.
  const Kernel& kernel(const GeneratedUnit& unit, CubinSource* source = nullptr);

  CubinStore& store() { return *store_; }
  static CubinKey key_for(const GeneratedUnit& unit);

 private:
  struct Loaded {
    Module module;
    Kernel kernel;
  };
  std::unique_ptr<CubinStore> store_;
  bool allow_compile_;
  std::mutex mutex_;
  std::map<std::string, CubinRecord> cubins_;                  // digest → record
  std::map<std::pair<CUcontext, std::string>, std::unique_ptr<Loaded>> loaded_;
};

// The process-wide JIT over the cache at settings().cache_dir (or in memory with SAGEJIT_CACHE=0).
Jit& default_jit();
// Path of the cache database inside a cache directory.
std::filesystem::path cache_database_path(const std::filesystem::path& cache_dir);

// Sets spdlog's level from SAGEJIT_LOG once.
void init_logging();

}  // namespace sagejit
