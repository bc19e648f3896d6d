// selftest.cpp — `sagejit selftest`, the main job: with a GPU, compile, run and check the
// quantization kernels against the host reference; without one, generate, compile and cache every
// shipped kernel for every supported arch, and say that no GPU was found.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "generator/quant_spec.hpp"
#include "reference/quant_check.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

namespace sagejit::cli {
namespace {

void compile_everything() {
  std::vector<GeneratedUnit> units;
  for (const Arch& arch : supported_archs()) {
    for (const QuantSpec& s : shipped_quant_specs(arch)) units.push_back(s.generate());
  }
  fmt::print("compiling {} kernels for sm_80, sm_86, sm_89, sm_90a and sm_120...\n", units.size());
  const auto results = default_jit().cubins(units);
  int compiled = 0, spilled = 0;
  for (const auto& r : results) {
    compiled += r.source == CubinSource::compiled;
    spilled += r.record.usage.spills();
  }
  fmt::print("{} kernels ready ({} compiled now, {} from the cache), {} with spills; cache: {}\n", results.size(),
             compiled, results.size() - compiled, spilled, default_jit().store().info().path.string());
  if (spilled) throw Error(Status::internal, fmt::format("{} kernels spill registers", spilled));
}

}  // namespace

void add_selftest(CLI::App& app) {
  auto* cmd = app.add_subcommand("selftest", "Compile, run and check the kernels (on a GPU), or compile and cache them");
  cmd->callback([] {
    if (!gpu_available()) {
      fmt::print("no GPU found: generating, compiling and caching kernels only\n");
      compile_everything();
      return;
    }
    const auto cases = quant_check_cases();
    int failed = 0;
    for (const QuantCheckCase& c : cases) {
      const QuantCheckReport r = run_quant_check(c);
      fmt::print("{:<70} {}\n", c.describe(), r.ok() ? "ok" : "FAILED: " + r.summary());
      failed += !r.ok();
    }
    fmt::print("{} of {} quantization checks passed\n", cases.size() - failed, cases.size());
    if (failed) throw Error(Status::internal, fmt::format("{} quantization checks failed", failed));
  });
}

}  // namespace sagejit::cli
