// Tests of runtime/settings: defaults, precedence and malformed values.
#include <doctest/doctest.h>

#include <map>

#include "runtime/error.hpp"
#include "runtime/settings.hpp"

using namespace sagejit;

namespace {
Settings::Lookup env(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("cache directory precedence: SAGEJIT_CACHE_DIR, XDG_CACHE_HOME, HOME") {
  CHECK(Settings::from_env(env({{"SAGEJIT_CACHE_DIR", "/a"}, {"XDG_CACHE_HOME", "/b"}, {"HOME", "/c"}})).cache_dir == "/a");
  CHECK(Settings::from_env(env({{"XDG_CACHE_HOME", "/b"}, {"HOME", "/c"}})).cache_dir == "/b/sagejit");
  CHECK(Settings::from_env(env({{"HOME", "/c"}})).cache_dir == "/c/.cache/sagejit");
}

TEST_CASE("defaults and flags") {
  Settings s = Settings::from_env(env({}));
  CHECK(s.disk_cache);
  CHECK(s.jit);
  CHECK(s.log_level == "warn");
  CHECK(s.cuda_home == "/usr/local/cuda");
  CHECK(s.compile_threads >= 1);
  s = Settings::from_env(env({{"SAGEJIT_JIT", "0"}, {"SAGEJIT_CACHE", "off"}, {"CUDA_HOME", "/opt/cuda"},
                              {"SAGEJIT_COMPILE_THREADS", "3"}, {"SAGEJIT_LOG", "debug"}}));
  CHECK_FALSE(s.jit);
  CHECK_FALSE(s.disk_cache);
  CHECK(s.cuda_home == "/opt/cuda");
  CHECK(s.compile_threads == 3);
  CHECK(s.log_level == "debug");
}

TEST_CASE("malformed values name the variable") {
  CHECK_THROWS_WITH_AS(Settings::from_env(env({{"SAGEJIT_JIT", "maybe"}})),
                       "argument `SAGEJIT_JIT`: must be 0/1, true/false, on/off or yes/no (got 'maybe')",
                       InvalidArgument);
  CHECK_THROWS_AS(Settings::from_env(env({{"SAGEJIT_COMPILE_THREADS", "0"}})), InvalidArgument);
  CHECK_THROWS_AS(Settings::from_env(env({{"SAGEJIT_COMPILE_THREADS", "4x"}})), InvalidArgument);
  CHECK_THROWS_AS(Settings::from_env(env({{"SAGEJIT_LOG", "loud"}})), InvalidArgument);
}
