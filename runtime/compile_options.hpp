// compile_options.hpp — the NVRTC options for a target, built in one place.
//
// `codegen` is everything that changes the binary and enters the cubin cache key. Include
// directories are kept apart: the templates include no CUDA header, so where the toolkit lives on
// this machine does not change the cubin and must not make keys differ between machines (an
// exported bundle built on one machine is served on another).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "generator/types.hpp"

namespace sagejit {

struct CompileOptions {
  std::vector<std::string> codegen;
  std::vector<std::string> include_dirs;

  std::vector<std::string> all() const;  // codegen, then -I for each include dir
  std::string key() const;               // codegen, space-joined
};

CompileOptions compile_options(const Arch& arch);

// <cuda_home>/include and, where present, <cuda_home>/include/cccl (CUDA 13 keeps CCCL there).
std::vector<std::filesystem::path> cuda_include_dirs(const std::filesystem::path& cuda_home);

}  // namespace sagejit
