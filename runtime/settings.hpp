// settings.hpp — every environment variable sagejit reads, declared once, typed and documented.
//
// Settings are read once, on first use, by `settings()`. Tests build their own with
// `Settings::from_env(lookup)`. A malformed value is an InvalidArgument naming the variable.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace sagejit {

struct Settings {
  // SAGEJIT_CACHE_DIR, else $XDG_CACHE_HOME/sagejit, else ~/.cache/sagejit.
  std::filesystem::path cache_dir;
  // SAGEJIT_CACHE=0 keeps compiled kernels in memory only (nothing is written to disk).
  bool disk_cache = true;
  // SAGEJIT_LOG: trace, debug, info, warn (default), error, off.
  std::string log_level = "warn";
  // SAGEJIT_JIT=0 forbids run-time compilation: a kernel that is in no cache or bundle is an error.
  bool jit = true;
  // SAGEJIT_CUDA_HOME, else CUDA_HOME, else CUDA_PATH, else /usr/local/cuda: where NVRTC and the
  // CUDA headers are looked for.
  std::filesystem::path cuda_home;
  // SAGEJIT_NVRTC: an explicit path to libnvrtc.so, tried before any other.
  std::optional<std::filesystem::path> nvrtc_library;
  // SAGEJIT_COMPILE_THREADS: how many kernels compile at once (default: hardware threads).
  int compile_threads = 0;
  // SAGEJIT_BUNDLE: an exported bundle (directory or single file, `sagejit export`) that kernels and
  // tuned choices are loaded from after the cache and before compiling.
  std::optional<std::filesystem::path> bundle;
  // SAGEJIT_TUNE=1: a problem bucket with no tuning record is tuned on its first call (seconds to a
  // minute or two: half a second of warm-up per candidate, 25-84 candidates at B4 H32 1k by head
  // dim; once per bucket and GPU model) and the result stored; off by default (heuristic tiles).
  bool tune_on_first_use = false;

  using Lookup = std::function<std::optional<std::string>(const char*)>;
  static Settings from_env(const Lookup& lookup);
};

// The process's settings, read from the environment on first use.
const Settings& settings();

}  // namespace sagejit
