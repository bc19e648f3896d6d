// unit.hpp — what the generator hands the compiler: one short unit that instantiates one kernel.
//
// The unit only includes embedded templates; the kernel is named by an NVRTC name expression and
// resolved through nvrtcGetLoweredName, never by scanning the binary.
#pragma once

#include <string>

#include "generator/types.hpp"

namespace sagejit {

// Bumped whenever the generator's output for an unchanged spec changes; part of every cache key.
constexpr const char* kGeneratorVersion = "2";

struct GeneratedUnit {
  std::string spec_name;        // the spec's canonical name (unique across families)
  Arch arch;
  std::string source;           // a few lines: includes, and nothing else
  std::string name_expression;  // "&sagejit::kernels::quantize_qk<...>"
};

}  // namespace sagejit
