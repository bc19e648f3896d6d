// Every shipped quantization kernel compiles with NVRTC for every supported arch, with no register
// spills and no stack frame (CI's check of the templates; no GPU needed).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "generator/quant_spec.hpp"
#include "runtime/jit.hpp"

using namespace sagejit;

TEST_CASE("every shipped quantization variant compiles for sm_80, sm_86, sm_89, sm_90a and sm_120 without spills") {
  Jit jit(CubinStore::in_memory());
  for (const Arch& arch : supported_archs()) {
    std::vector<GeneratedUnit> units;
    for (const QuantSpec& s : shipped_quant_specs(arch)) units.push_back(s.generate());
    std::vector<CubinResult> results = jit.cubins(units);
    REQUIRE(results.size() == units.size());
    int worst_registers = 0;
    for (const CubinResult& r : results) {
      CAPTURE(r.record.key.spec);
      CHECK(r.record.usage.registers > 0);
      CHECK(r.record.usage.spill_stores == 0);
      CHECK(r.record.usage.spill_loads == 0);
      CHECK(r.record.usage.stack_frame == 0);
      worst_registers = std::max(worst_registers, r.record.usage.registers);
    }
    MESSAGE(fmt::format("{}: {} quantization kernels, at most {} registers", arch.name(), results.size(),
                        worst_registers));
  }
}
