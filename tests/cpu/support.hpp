// support.hpp — helpers shared by the CPU tests.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <string_view>
#include <system_error>

namespace sagejit::test {

// A fresh directory under the system temp dir, unique per process, object and run (so forked
// children and parallel test binaries never share one), removed with everything in it on scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(std::string_view tag = "test") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           fmt::format("sagejit-{}-{}-{}-{}", tag, getpid(), counter++, std::random_device{}());
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace sagejit::test
