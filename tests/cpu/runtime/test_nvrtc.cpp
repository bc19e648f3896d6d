// Tests of runtime/nvrtc and runtime/compile_options: compiling without a GPU, errors that carry
// the log, resource usage parsing.
#include <doctest/doctest.h>

#include "generator/embedded.hpp"
#include "runtime/compile_options.hpp"
#include "runtime/error.hpp"
#include "runtime/nvrtc.hpp"

using namespace sagejit;

namespace {

std::vector<std::pair<std::string, std::string>> headers() {
  std::vector<std::pair<std::string, std::string>> h;
  for (const auto& f : embedded_templates()) h.emplace_back(std::string(f.name), std::string(f.contents));
  return h;
}

const char* kSmallKernel = R"(
#include "quant_layout.cuh"
namespace probe {
template <int N> __global__ void fill(float* out) { out[threadIdx.x] = sagejit::layout::kFp8Max * N; }
}
)";

}  // namespace

TEST_CASE("parse_resource_usage reads ptxas's verbose report") {
  const std::string log =
      "ptxas info    : Compiling entry function '_Z4fillPf' for 'sm_90a'\n"
      "ptxas info    : Function properties for _Z4fillPf\n"
      "    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 42 registers, used 1 barriers, 2048 bytes smem, 368 bytes cmem[0]\n";
  ResourceUsage u = parse_resource_usage(log);
  CHECK(u.registers == 42);
  CHECK(u.stack_frame == 16);
  CHECK(u.spill_stores == 8);
  CHECK(u.spill_loads == 12);
  CHECK(u.shared_static == 2048);
  CHECK(u.constant == 368);
  CHECK(u.spills());
  CHECK(parse_resource_usage("").registers == -1);
}

TEST_CASE("NVRTC compiles an embedded-template unit for every supported arch without a GPU") {
  for (const Arch& arch : supported_archs()) {
    CAPTURE(arch.name());
    CompileResult r = compile({"probe", kSmallKernel, headers(), compile_options(arch).all(), "&probe::fill<3>"});
    CHECK(r.cubin.size() > 100);
    CHECK(std::string(r.cubin.data(), 4) == "\x7f" "ELF");
    CHECK(r.lowered_name.find("fill") != std::string::npos);
    CHECK(r.usage.registers > 0);
    CHECK_FALSE(r.usage.spills());
  }
}

TEST_CASE("a compile error carries the unit, the options and the NVRTC log") {
  try {
    compile({"broken_unit", "__global__ void k() { undefined_symbol(); }", {}, compile_options(parse_arch("sm_80")).all(),
             "&k"});
    FAIL("expected CompileError");
  } catch (const CompileError& e) {
    CHECK(e.kernel() == "broken_unit");
    CHECK(e.options().find("--gpu-architecture=sm_80") != std::string::npos);
    CHECK(e.log().find("undefined_symbol") != std::string::npos);
    CHECK(std::string(e.what()).find("undefined_symbol") != std::string::npos);
  }
}

TEST_CASE("compile options: arch in the key, include dirs kept out of it") {
  CompileOptions o = compile_options(parse_arch("sm_90a"));
  CHECK(o.key().find("--gpu-architecture=sm_90a") != std::string::npos);
  CHECK(o.key().find("-I") == std::string::npos);
  CHECK(compile_options(parse_arch("sm_80")).key() != o.key());
  for (const auto& dir : o.include_dirs) CHECK(o.all().back().find("-I") == 0);
}
