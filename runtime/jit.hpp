// jit.hpp — from a generated unit to a loaded kernel: in-process map → SQLite → exported bundle →
// compile → store.
//
// The cubin path needs no GPU (CI compiles every shipped variant through it); `kernel()` loads the
// cubin into the current CUDA context. Compile errors propagate as CompileError; a cache failure
// never does (the store degrades to memory). With SAGEJIT_JIT=0 a kernel that neither the cache nor
// the bundle holds is a NotAvailable naming its spec (and the bundle): never a silent compile. A
// bundle's kernels are found even where NVRTC is absent (they are matched without its version).
#pragma once

#include <cuda.h>

#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/bundle.hpp"
#include "cache/cubin_store.hpp"
#include "generator/unit.hpp"
#include "runtime/module.hpp"

namespace sagejit {

enum class CubinSource { memory, disk, bundle, compiled };
std::string_view name(CubinSource s);

struct CubinResult {
  CubinRecord record;
  CubinSource source = CubinSource::compiled;
  double ms = 0;  // time to obtain it (lookup, or lookup + compile + store)
};

// How many cubins came from where since the Jit was made (a warm process should show no compiles).
struct JitStats {
  int memory = 0, disk = 0, bundle = 0, compiled = 0;
};

class Jit {
 public:
  // `bundle` (may be null) is searched after the store and before compiling; `bundle_name` names
  // it in errors.
  explicit Jit(std::unique_ptr<CubinStore> store, bool allow_compile = true,
               std::shared_ptr<const Bundle> bundle = nullptr, std::string bundle_name = {});

  CubinResult cubin(const GeneratedUnit& unit);
  // Results in input order; misses compile in parallel on settings().compile_threads threads. The
  // first error is rethrown after every unit has finished.
  std::vector<CubinResult> cubins(const std::vector<GeneratedUnit>& units);
  // The kernel loaded into the current context (retaining device 0's primary context if the
  // thread has none). `source`, if given, says where the cubin came from.
  const Kernel& kernel(const GeneratedUnit& unit, CubinSource* source = nullptr);

  CubinStore& store() { return *store_; }
  const Bundle* bundle() const { return bundle_.get(); }
  JitStats stats();
  static CubinKey key_for(const GeneratedUnit& unit);

 private:
  struct Loaded {
    Module module;
    Kernel kernel;
  };
  std::optional<CubinResult> from_bundle(const GeneratedUnit& unit, std::chrono::steady_clock::time_point start);
  void count(CubinSource s);

  std::unique_ptr<CubinStore> store_;
  bool allow_compile_;
  std::shared_ptr<const Bundle> bundle_;
  std::string bundle_name_;
  JitStats stats_;
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
