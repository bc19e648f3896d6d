// Every representative attention kernel compiles with NVRTC for every supported arch, with no
// register spills and no stack frame (CI's check of templates/attn_mma.cuh; no GPU needed).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "generator/attn_spec.hpp"
#include "runtime/jit.hpp"

using namespace sagejit;

TEST_CASE(
    "attn_mma: every representative variant compiles for sm_80, sm_86, sm_89, sm_90a and sm_120 without "
    "spills") {
  Jit jit(CubinStore::in_memory());
  for (const Arch& arch : supported_archs()) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<GeneratedUnit> units;
    for (const AttnSpec& s : representative_attn_specs(arch)) units.push_back(s.generate());
    std::vector<CubinResult> results = jit.cubins(units);
    REQUIRE(results.size() == units.size());
    int worst_registers = 0;
    std::string worst;
    for (const CubinResult& r : results) {
      CAPTURE(r.record.key.spec);
      CHECK(r.record.usage.registers > 0);
      CHECK(r.record.usage.spill_stores == 0);
      CHECK(r.record.usage.spill_loads == 0);
      CHECK(r.record.usage.stack_frame == 0);
      if (r.record.usage.registers > worst_registers) {
        worst_registers = r.record.usage.registers;
        worst = r.record.key.spec;
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE(fmt::format("{}: {} attention kernels in {:.0f} s, at most {} registers ({})", arch.name(), results.size(),
                        seconds, worst_registers, worst));
  }
}
