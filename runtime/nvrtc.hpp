// nvrtc.hpp — NVRTC, loaded at run time, and the one function that turns a unit into a cubin.
//
// `compile()` owns the nvrtcProgram with RAII, so a failed compile frees it; a failure throws a
// CompileError carrying the unit's name, the options and the full NVRTC log. Resource usage is
// read from ptxas's verbose report (registers, stack, spills, shared memory) for every compile.
#pragma once

#include <nvrtc.h>

#include <string>
#include <utility>
#include <vector>

#include "cache/cubin_store.hpp"

namespace sagejit {

#define SAGEJIT_NVRTC_FUNCTIONS(X)                                                            \
  X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcDestroyProgram)        \
  X(nvrtcAddNameExpression) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize)                 \
  X(nvrtcGetProgramLog) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN) X(nvrtcGetLoweredName)         \
  X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs)

struct NvrtcApi {
#define SAGEJIT_DECLARE_FN(name) decltype(&::name) name = nullptr;
  SAGEJIT_NVRTC_FUNCTIONS(SAGEJIT_DECLARE_FN)
#undef SAGEJIT_DECLARE_FN
  int major = 0;
  int minor = 0;
  std::string library_path;
  std::vector<int> supported_archs;  // e.g. 75, 80, ..., 120
};

// Loads libnvrtc (SAGEJIT_NVRTC, then the CUDA home's lib64, then the loader's search path).
// Throws NotAvailable listing what was tried.
const NvrtcApi& nvrtc();

// "13.0"
std::string nvrtc_version_string();

struct CompileRequest {
  std::string unit_name;                                  // e.g. the spec's canonical name
  std::string source;                                     // the generated unit
  std::vector<std::pair<std::string, std::string>> headers;  // (name, contents) seen by #include
  std::vector<std::string> options;
  std::string name_expression;                            // e.g. "&sagejit::kernels::f<...>"
};

struct CompileResult {
  std::vector<char> cubin;
  std::string lowered_name;
  std::string log;
  ResourceUsage usage;
  double compile_ms = 0;
};

CompileResult compile(const CompileRequest& request);

// Parses ptxas's "-v" report ("Used 40 registers, used 1 barriers, 384 bytes smem, ...",
// "8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"). Fields not reported keep their
// defaults (registers stays -1).
ResourceUsage parse_resource_usage(const std::string& log);

}  // namespace sagejit
