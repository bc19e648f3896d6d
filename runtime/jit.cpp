// jit.cpp — the cubin pipeline and the loaded-kernel map.
#include "runtime/jit.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "generator/embedded.hpp"
#include "runtime/compile_options.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/nvrtc.hpp"
#include "runtime/settings.hpp"

namespace sagejit {
namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

std::vector<std::pair<std::string, std::string>> template_headers() {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const EmbeddedFile& f : embedded_templates()) headers.emplace_back(std::string(f.name), std::string(f.contents));
  return headers;
}

}  // namespace

std::string_view name(CubinSource s) {
  return s == CubinSource::memory   ? "memory"
         : s == CubinSource::disk   ? "disk"
         : s == CubinSource::bundle ? "bundle"
                                    : "compiled";
}

Jit::Jit(std::unique_ptr<CubinStore> store, bool allow_compile, std::shared_ptr<const Bundle> bundle,
         std::string bundle_name)
    : store_(std::move(store)), allow_compile_(allow_compile), bundle_(std::move(bundle)),
      bundle_name_(std::move(bundle_name)) {}

void Jit::count(CubinSource s) {
  std::lock_guard lock(mutex_);
  int& n = s == CubinSource::memory ? stats_.memory
           : s == CubinSource::disk ? stats_.disk
           : s == CubinSource::bundle ? stats_.bundle
                                      : stats_.compiled;
  ++n;
}

JitStats Jit::stats() {
  std::lock_guard lock(mutex_);
  return stats_;
}

// Bundle kernels are kept in the in-process map under "bundle:" + spec + arch: their key may name
// another NVRTC than this machine's (or this machine may have none).
std::optional<CubinResult> Jit::from_bundle(const GeneratedUnit& unit, std::chrono::steady_clock::time_point start) {
  if (!bundle_) return std::nullopt;
  const std::string slot = "bundle:" + unit.spec_name + ":" + unit.arch.name();
  {
    std::lock_guard lock(mutex_);
    if (auto it = cubins_.find(slot); it != cubins_.end()) {
      ++stats_.memory;
      return CubinResult{it->second, CubinSource::memory, ms_since(start)};
    }
  }
  const CubinRecord* r =
      bundle_->find(unit.spec_name, unit.arch.name(), std::string(embedded_templates_hash()), kGeneratorVersion);
  if (!r) return std::nullopt;
  std::lock_guard lock(mutex_);
  ++stats_.bundle;
  auto [it, inserted] = cubins_.emplace(slot, *r);
  return CubinResult{it->second, CubinSource::bundle, ms_since(start)};
}

CubinKey Jit::key_for(const GeneratedUnit& unit) {
  return CubinKey{unit.spec_name,           std::string(embedded_templates_hash()), kGeneratorVersion,
                  nvrtc_version_string(),   compile_options(unit.arch).key(),      unit.arch.name()};
}

CubinResult Jit::cubin(const GeneratedUnit& unit) {
  const auto start = std::chrono::steady_clock::now();
  CubinKey key;
  try {
    key = key_for(unit);
  } catch (const NotAvailable&) {
    // No NVRTC here: only a bundle can serve the kernel.
    if (auto hit = from_bundle(unit, start)) return *hit;
    throw;
  }
  const std::string digest = key.digest();
  {
    std::lock_guard lock(mutex_);
    if (auto it = cubins_.find(digest); it != cubins_.end()) {
      ++stats_.memory;
      return CubinResult{it->second, CubinSource::memory, ms_since(start)};
    }
  }
  if (auto record = store_->get(key)) {
    std::lock_guard lock(mutex_);
    ++stats_.disk;
    cubins_.emplace(digest, *record);
    return CubinResult{std::move(*record), CubinSource::disk, ms_since(start)};
  }
  if (auto hit = from_bundle(unit, start)) return *hit;
  if (!allow_compile_) {
    throw NotAvailable(fmt::format("kernel {} for {} is in no cache{}, and run-time compilation is off "
                                   "(SAGEJIT_JIT=0): export a bundle that holds it (sagejit export) or allow "
                                   "compiling", unit.spec_name, unit.arch.name(),
                                   bundle_ ? " nor in the bundle " + bundle_name_
                                           : bundle_name_.empty() ? " and no bundle is set (SAGEJIT_BUNDLE)"
                                                                  : " and the bundle " + bundle_name_ +
                                                                        " could not be read"));
  }
  const CompileOptions options = compile_options(unit.arch);
  CompileResult compiled = compile(CompileRequest{unit.spec_name, unit.source, template_headers(), options.all(),
                                                  unit.name_expression});
  spdlog::debug("compiled {} in {:.0f} ms: {} registers, {} bytes spilled", unit.spec_name, compiled.compile_ms,
                compiled.usage.registers, compiled.usage.spill_stores);
  CubinRecord record{key, compiled.lowered_name, std::move(compiled.cubin), compiled.usage, compiled.compile_ms};
  store_->put(record);
  std::lock_guard lock(mutex_);
  ++stats_.compiled;
  auto [it, inserted] = cubins_.emplace(digest, std::move(record));
  return CubinResult{it->second, CubinSource::compiled, ms_since(start)};
}

std::vector<CubinResult> Jit::cubins(const std::vector<GeneratedUnit>& units) {
  std::vector<CubinResult> results(units.size());
  std::vector<std::exception_ptr> errors(units.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < units.size(); i = next++) {
      try {
        results[i] = cubin(units[i]);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const std::size_t n = std::min<std::size_t>(units.size(), static_cast<std::size_t>(settings().compile_threads));
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < n; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return results;
}

const Kernel& Jit::kernel(const GeneratedUnit& unit, CubinSource* source) {
  CUcontext ctx = ensure_current_context();
  std::string digest;
  try {
    digest = key_for(unit).digest();
  } catch (const NotAvailable&) {
    digest = "bundle:" + unit.spec_name + ":" + unit.arch.name();  // no NVRTC: only a bundle serves it
  }
  {
    std::lock_guard lock(mutex_);
    if (auto it = loaded_.find({ctx, digest}); it != loaded_.end()) {
      if (source) *source = CubinSource::memory;
      return it->second->kernel;
    }
  }
  CubinResult result = cubin(unit);
  if (source) *source = result.source;
  Module module = Module::load(result.record.cubin);
  Kernel kernel = module.kernel(result.record.lowered_name);
  std::lock_guard lock(mutex_);
  auto [it, inserted] = loaded_.emplace(std::make_pair(ctx, digest),
                                        std::make_unique<Loaded>(Loaded{std::move(module), kernel}));
  return it->second->kernel;
}

std::filesystem::path cache_database_path(const std::filesystem::path& cache_dir) {
  return cache_dir / "sagejit.sqlite3";
}

Jit& default_jit() {
  static Jit* jit = [] {
    init_logging();
    const Settings& s = settings();
    auto store = s.disk_cache ? CubinStore::open(cache_database_path(s.cache_dir)) : CubinStore::in_memory();
    std::shared_ptr<const Bundle> bundle;
    std::string bundle_name;
    if (s.bundle) {
      bundle_name = s.bundle->string();
      try {
        bundle = std::make_shared<const Bundle>(Bundle::read(*s.bundle));
        spdlog::debug("sagejit: bundle {} holds {} kernels and {} tuned choices", bundle_name,
                      bundle->kernels().size(), bundle->winners().size());
      } catch (const Error& e) {
        // A bad bundle must not take the process down while compiling can stand in; with
        // SAGEJIT_JIT=0 every kernel it should have held is an error that names it.
        spdlog::warn("sagejit: cannot use the bundle SAGEJIT_BUNDLE={} ({})", bundle_name, e.what());
      }
    }
    // never destroyed: kernels may be used until exit
    return new Jit(std::move(store), s.jit, std::move(bundle), std::move(bundle_name));
  }();
  return *jit;
}

void init_logging() {
  static std::once_flag once;
  std::call_once(once, [] { spdlog::set_level(spdlog::level::from_str(settings().log_level)); });
}

}  // namespace sagejit
