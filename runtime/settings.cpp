// settings.cpp — reads the environment once.
#include "runtime/settings.hpp"

#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "runtime/error.hpp"

namespace sagejit {
namespace {

bool parse_flag(const char* name, const std::string& value) {
  if (value == "1" || value == "true" || value == "on" || value == "yes") return true;
  if (value == "0" || value == "false" || value == "off" || value == "no") return false;
  throw InvalidArgument(name, fmt::format("must be 0/1, true/false, on/off or yes/no (got '{}')", value));
}

}  // namespace

Settings Settings::from_env(const Lookup& lookup) {
  Settings s;
  if (auto dir = lookup("SAGEJIT_CACHE_DIR"); dir && !dir->empty()) {
    s.cache_dir = *dir;
  } else if (auto xdg = lookup("XDG_CACHE_HOME"); xdg && !xdg->empty()) {
    s.cache_dir = std::filesystem::path(*xdg) / "sagejit";
  } else if (auto home = lookup("HOME"); home && !home->empty()) {
    s.cache_dir = std::filesystem::path(*home) / ".cache" / "sagejit";
  } else {
    s.cache_dir = std::filesystem::temp_directory_path() / "sagejit-cache";
  }
  if (auto v = lookup("SAGEJIT_CACHE")) s.disk_cache = parse_flag("SAGEJIT_CACHE", *v);
  if (auto v = lookup("SAGEJIT_LOG")) {
    static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
    bool known = false;
    for (const char* level : kLevels) known |= (*v == level);
    if (!known) {
      throw InvalidArgument("SAGEJIT_LOG",
                            fmt::format("must be trace, debug, info, warn, error or off (got '{}')", *v));
    }
    s.log_level = *v;
  }
  if (auto v = lookup("SAGEJIT_JIT")) s.jit = parse_flag("SAGEJIT_JIT", *v);
  s.cuda_home = "/usr/local/cuda";
  for (const char* name : {"SAGEJIT_CUDA_HOME", "CUDA_HOME", "CUDA_PATH"}) {
    if (auto v = lookup(name); v && !v->empty()) {
      s.cuda_home = *v;
      break;
    }
  }
  if (auto v = lookup("SAGEJIT_NVRTC"); v && !v->empty()) s.nvrtc_library = std::filesystem::path(*v);
  s.compile_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (auto v = lookup("SAGEJIT_COMPILE_THREADS"); v && !v->empty()) {
    char* end = nullptr;
    long n = std::strtol(v->c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 1024) {
      throw InvalidArgument("SAGEJIT_COMPILE_THREADS",
                            fmt::format("must be an integer in [1, 1024] (got '{}')", *v));
    }
    s.compile_threads = static_cast<int>(n);
  }
  if (auto v = lookup("SAGEJIT_BUNDLE"); v && !v->empty()) s.bundle = std::filesystem::path(*v);
  if (auto v = lookup("SAGEJIT_TUNE")) s.tune_on_first_use = parse_flag("SAGEJIT_TUNE", *v);
  return s;
}

const Settings& settings() {
  static const Settings s = Settings::from_env([](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
  return s;
}

}  // namespace sagejit
