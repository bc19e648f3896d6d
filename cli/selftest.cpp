// selftest.cpp — `sagejit selftest`, the main job: with a GPU, compile, run and check the
// quantization kernels against the host reference; without one, generate, compile and cache every
// shipped kernel for every supported arch, and say that no GPU was found.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "generator/attn_spec.hpp"
#include "generator/quant_spec.hpp"
#include "reference/attention_check.hpp"
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
    for (const AttnSpec& s : representative_attn_specs(arch)) units.push_back(s.generate());
  }
  fmt::print("compiling {} kernels (quantization and representative attention) for sm_80, sm_86, sm_89, sm_90a and sm_120...\n", units.size());
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
    // Attention against float64 on N(0, 1) inputs, in this GPU's default P·V mode. Bars: cosine
    // >= 0.999 and relative L1 <= 0.015 (f16 P·V) or 0.04 (FP8 P·V), as the GPU tests.
    int attn_failed = 0;
    for (Mask mask : {Mask::none, Mask::causal_top_left}) {
      AttnCheckCase c;
      c.heads_q = 8, c.heads_kv = 2, c.seq_q = 1000, c.seq_kv = 1000, c.options.mask = mask;
      const AttnCheckReport r = run_attention_check(c);
      const bool ok = r.unwritten == 0 && r.cosine >= 0.999 && r.rel_l1 <= (r.fp8_pv ? 0.04 : 0.015);
      fmt::print("{:<70} cos {:.6f} rel L1 {:.4f} {}\n", c.describe().substr(0, 70), r.cosine, r.rel_l1,
                 ok ? "ok" : "FAILED");
      attn_failed += !ok;
    }
    if (failed || attn_failed) {
      throw Error(Status::internal, fmt::format("{} quantization and {} attention checks failed", failed, attn_failed));
    }
    fmt::print("all checks passed\n");
  });
}

}  // namespace sagejit::cli
