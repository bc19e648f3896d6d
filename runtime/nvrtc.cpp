// nvrtc.cpp — loading NVRTC and compiling one unit to a cubin.
#include "runtime/nvrtc.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/dynlib.hpp"
#include "runtime/error.hpp"
#include "runtime/settings.hpp"

#define SAGEJIT_STR2(x) #x
#define SAGEJIT_STR(x) SAGEJIT_STR2(x)

namespace sagejit {
namespace {

struct LoadedNvrtc {
  DynLib lib;
  NvrtcApi api;
};

std::vector<std::string> nvrtc_candidates() {
  const Settings& s = settings();
  std::vector<std::string> out;
  if (s.nvrtc_library) out.push_back(s.nvrtc_library->string());
  // Newest first: a newer NVRTC knows every arch an older one does.
  for (const char* name : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) {
    out.push_back((s.cuda_home / "lib64" / name).string());
  }
  for (const char* name : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) out.push_back(name);
  return out;
}

LoadedNvrtc load_nvrtc() {
  DynLib lib = DynLib::open_first(
      "NVRTC (libnvrtc.so; install the CUDA toolkit's NVRTC or set SAGEJIT_NVRTC / SAGEJIT_CUDA_HOME)",
      nvrtc_candidates());
  NvrtcApi api;
#define SAGEJIT_RESOLVE_FN(name) \
  api.name = reinterpret_cast<decltype(api.name)>(lib.require(SAGEJIT_STR(name)));
  SAGEJIT_NVRTC_FUNCTIONS(SAGEJIT_RESOLVE_FN)
#undef SAGEJIT_RESOLVE_FN
  api.nvrtcVersion(&api.major, &api.minor);
  api.library_path = lib.path();
  int n = 0;
  if (api.nvrtcGetNumSupportedArchs(&n) == NVRTC_SUCCESS && n > 0) {
    api.supported_archs.resize(n);
    api.nvrtcGetSupportedArchs(api.supported_archs.data());
  }
  return LoadedNvrtc{std::move(lib), api};
}

void check(nvrtcResult r, const char* call) {
  if (r == NVRTC_SUCCESS) return;
  throw Error(Status::compile_error,
              fmt::format("{} failed: {} ({})", call, nvrtc().nvrtcGetErrorString(r), static_cast<int>(r)));
}

// Owns an nvrtcProgram so every exit path destroys it.
class Program {
 public:
  explicit Program(nvrtcProgram p) : p_(p) {}
  ~Program() { nvrtc().nvrtcDestroyProgram(&p_); }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  nvrtcProgram get() const { return p_; }

 private:
  nvrtcProgram p_;
};

std::string program_log(nvrtcProgram p) {
  std::size_t size = 0;
  if (nvrtc().nvrtcGetProgramLogSize(p, &size) != NVRTC_SUCCESS || size == 0) return {};
  std::string log(size, '\0');
  nvrtc().nvrtcGetProgramLog(p, log.data());
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  return log;
}

int match_int(const std::string& log, const std::regex& re) {
  std::smatch m;
  return std::regex_search(log, m, re) ? std::stoi(m[1].str()) : -1;
}

}  // namespace

const NvrtcApi& nvrtc() {
  static std::atomic<LoadedNvrtc*> loaded{nullptr};
  if (LoadedNvrtc* p = loaded.load(std::memory_order_acquire)) return p->api;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (!loaded.load(std::memory_order_relaxed)) {
    loaded.store(new LoadedNvrtc(load_nvrtc()), std::memory_order_release);
  }
  return loaded.load(std::memory_order_relaxed)->api;
}

std::string nvrtc_version_string() { return fmt::format("{}.{}", nvrtc().major, nvrtc().minor); }

ResourceUsage parse_resource_usage(const std::string& log) {
  static const std::regex registers(R"(Used (\d+) registers)");
  static const std::regex stack(R"((\d+) bytes stack frame)");
  static const std::regex stores(R"((\d+) bytes spill stores)");
  static const std::regex loads(R"((\d+) bytes spill loads)");
  static const std::regex smem(R"((\d+) bytes smem)");
  static const std::regex cmem(R"((\d+) bytes cmem\[0\])");
  ResourceUsage u;
  u.registers = match_int(log, registers);
  u.stack_frame = std::max(0, match_int(log, stack));
  u.spill_stores = std::max(0, match_int(log, stores));
  u.spill_loads = std::max(0, match_int(log, loads));
  u.shared_static = std::max(0, match_int(log, smem));
  u.constant = std::max(0, match_int(log, cmem));
  return u;
}

CompileResult compile(const CompileRequest& request) {
  const NvrtcApi& api = nvrtc();
  const auto start = std::chrono::steady_clock::now();

  std::vector<const char*> header_sources, header_names;
  for (const auto& [name, contents] : request.headers) {
    header_names.push_back(name.c_str());
    header_sources.push_back(contents.c_str());
  }
  nvrtcProgram raw = nullptr;
  check(api.nvrtcCreateProgram(&raw, request.source.c_str(), (request.unit_name + ".cu").c_str(),
                               static_cast<int>(header_sources.size()), header_sources.data(),
                               header_names.data()),
        "nvrtcCreateProgram");
  Program program(raw);
  check(api.nvrtcAddNameExpression(raw, request.name_expression.c_str()), "nvrtcAddNameExpression");

  std::vector<const char*> options;
  for (const auto& o : request.options) options.push_back(o.c_str());
  const nvrtcResult compiled = api.nvrtcCompileProgram(raw, static_cast<int>(options.size()), options.data());
  CompileResult result;
  result.log = program_log(raw);
  if (compiled != NVRTC_SUCCESS) {
    throw CompileError(request.unit_name, fmt::format("{}", fmt::join(request.options, " ")),
                       result.log + "\n--- generated unit ---\n" + request.source,
                       api.nvrtcGetErrorString(compiled));
  }
  const char* lowered = nullptr;
  check(api.nvrtcGetLoweredName(raw, request.name_expression.c_str(), &lowered), "nvrtcGetLoweredName");
  result.lowered_name = lowered;
  std::size_t size = 0;
  check(api.nvrtcGetCUBINSize(raw, &size), "nvrtcGetCUBINSize");
  result.cubin.resize(size);
  check(api.nvrtcGetCUBIN(raw, result.cubin.data()), "nvrtcGetCUBIN");
  result.usage = parse_resource_usage(result.log);
  result.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace sagejit
