// compile_options.cpp — NVRTC options per arch.
#include "runtime/compile_options.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/settings.hpp"

namespace sagejit {

std::vector<std::string> CompileOptions::all() const {
  std::vector<std::string> out = codegen;
  for (const auto& dir : include_dirs) out.push_back("-I" + dir);
  return out;
}

std::string CompileOptions::key() const { return fmt::format("{}", fmt::join(codegen, " ")); }

std::vector<std::filesystem::path> cuda_include_dirs(const std::filesystem::path& cuda_home) {
  std::vector<std::filesystem::path> dirs;
  std::error_code ec;
  for (auto dir : {cuda_home / "include", cuda_home / "include" / "cccl"}) {
    if (std::filesystem::is_directory(dir, ec)) dirs.push_back(dir);
  }
  return dirs;
}

CompileOptions compile_options(const Arch& arch) {
  CompileOptions o;
  o.codegen = {
      fmt::format("--gpu-architecture={}", arch.name()),
      "-std=c++17",
      "-default-device",
      // ptxas's verbose report is how registers, spills and shared memory are captured.
      "--ptxas-options=-v",
      // Line info costs nothing at run time and lets profilers map stalls to template lines.
      "-lineinfo",
      "-DNDEBUG",
  };
  for (const auto& dir : cuda_include_dirs(settings().cuda_home)) o.include_dirs.push_back(dir.string());
  return o;
}

}  // namespace sagejit
