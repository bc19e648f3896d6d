// compile.cpp — `sagejit compile`: build kernels from flags (or every shipped variant) for the GPU
// here or any supported arch, printing name, key, hit or miss, compile time and resource use.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include <cstdio>
#include <limits>

#include "autotune/problem.hpp"
#include "generator/attn_spec.hpp"
#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

namespace sagejit::cli {
namespace {

constexpr std::int64_t kSeqUnset = std::numeric_limits<std::int64_t>::min();

struct CompileFlags {
  std::vector<std::string> archs;
  std::string op = "quantize_q";
  std::string dtype = "f16";
  int head_dim = 128;
  std::string out = "int8";
  bool smooth = false;
  bool with_v = false;
  std::string family = "quant";
  std::string mask = "none";
  std::string pv = "default";
  std::string granularity = "per_thread";
  std::string tile;
  std::string attn_family;  // mma or wgmma; empty: as attention() would choose
  std::int64_t seq = kSeqUnset;  // the query and key length the default choice is made for (unset: 4096)
  bool lse = false;
  bool all = false;
  bool json = false;
  bool fail_on_spill = false;
};

// The flag that sets an attention spec's field, for the errors its validation names by field; empty
// where no flag sets it.
std::string_view flag_of_field(std::string_view field) {
  if (field == "head_dim") return "--head-dim";
  if (field == "quant.qk") return "--out";
  if (field == "quant.pv") return "--pv";
  if (field == "quant.smooth_q") return "--smooth";
  if (field == "mask") return "--mask";
  if (field == "arch") return "--arch";
  return {};
}

// The attention kernel the flags name: without --attn-family and --tile, the one attention() runs on
// `arch` for one head of --seq queries and keys when nothing is tuned (the sm_90a wgmma kernel where it
// applies; its shared-ring rule taken for kDefaultSmCount SMs, as this may run without a GPU);
// otherwise the forced variant, as `sagejit bench --family / --tile` times it. Tiles are named as
// tuning records name them (t64x128w4s1c3); the older form without the leading t is accepted.
// Validated; an error names the spec's field, except --attn-family's and --tile's.
AttnSpec attn_spec_of_flags(const CompileFlags& f, const Arch& arch) {
  Problem p;
  p.arch = arch;
  p.head_dim = f.head_dim;
  p.qk = parse_quant_type(f.out, "--out");
  p.granularity = parse_granularity(f.granularity, "--granularity");
  if (f.pv != "default") p.pv = parse_pv_type(f.pv, "--pv");
  p.smooth_q = f.smooth;
  p.mask = parse_mask(f.mask, "--mask");
  p.dtype = parse_dtype(f.dtype, "--dtype");
  p.lse = f.lse;
  p.seq_q = p.seq_kv = f.seq == kSeqUnset ? 4096 : f.seq;
  const std::optional<AttnFamily> family =
      f.attn_family.empty() ? std::nullopt : std::optional(parse_family(f.attn_family, "--attn-family"));
  std::optional<AttnTile> tile;
  if (!f.tile.empty()) {
    try {
      tile = parse_tile_name(f.tile.front() == 't' ? f.tile : "t" + f.tile, "--tile");
    } catch (const InvalidArgument&) {
      throw InvalidArgument("--tile", fmt::format("must read [t]CTA_QxCTA_KwWARPSsSTAGES[cMIN_CTAS][p], e.g. "
                                                  "t128x64w8s2 or t64x128w4s1c3 (got '{}')", f.tile));
    }
    if (!family && (is_wgmma_single(*tile) || *tile == wgmma_shared_tile())) {
      throw InvalidArgument("--tile", fmt::format("{} is a wgmma tile ({}), and a tile alone means the mma family: "
                                                  "add --attn-family wgmma",
                                                  f.tile, is_wgmma_single(*tile) ? "one stage: the single-warpgroup form"
                                                                                 : "three warpgroups: the shared-ring form"));
    }
  }
  if (!family && !tile) {
    AttnSpec s = default_spec(p);
    s.validate();
    return s;
  }
  try {
    AttnSpec s = forced_spec(p, family, tile);
    s.validate();
    return s;
  } catch (const InvalidArgument& e) {
    // forced_spec names the API's fields; name the flags instead.
    if (e.argument() == "family") throw InvalidArgument("--attn-family", fmt::format("{} on {}", e.rule(), arch.name()));
    if (e.argument().rfind("tile", 0) == 0) {
      throw InvalidArgument("--tile", e.argument() == "tile" ? e.rule() : fmt::format("{}: {}", e.argument(), e.rule()));
    }
    throw;
  }
}

// As above, with errors that name a spec field renamed to the flag that sets it.
AttnSpec attn_spec_from_flags(const CompileFlags& f, const Arch& arch) {
  try {
    return attn_spec_of_flags(f, arch);
  } catch (const InvalidArgument& e) {
    const std::string_view flag = flag_of_field(e.argument());
    if (flag.empty()) throw;
    throw InvalidArgument(std::string(flag), e.rule());
  }
}

void run(const CompileFlags& f) {
  if (f.family != "quant" && f.family != "attn") {
    throw InvalidArgument("--family", fmt::format("must be quant or attn (got '{}')", f.family));
  }
  if (f.seq != kSeqUnset && f.seq < 1) throw InvalidArgument("--seq", fmt::format("must be at least 1 (got {})", f.seq));
  if (f.all && (!f.tile.empty() || !f.attn_family.empty() || f.seq != kSeqUnset)) {
    throw InvalidArgument("--all", "builds every variant: it takes no --tile, --attn-family or --seq");
  }
  std::vector<GeneratedUnit> units;
  for (const Arch& arch : target_archs(f.archs)) {
    if (f.family == "attn") {
      if (f.all) {
        for (const AttnSpec& s : full_attn_specs(arch)) units.push_back(s.generate());
      } else {
        units.push_back(attn_spec_from_flags(f, arch).generate());
      }
    } else if (f.all) {
      for (const QuantSpec& s : shipped_quant_specs(arch)) units.push_back(s.generate());
    } else {
      QuantSpec s{arch, parse_quant_op(f.op, "--op"), parse_dtype(f.dtype, "--dtype"), f.head_dim,
                  parse_quant_type(f.out, "--out"), f.smooth};
      s.with_v = f.with_v;
      units.push_back(s.generate());
    }
  }
  if (!f.json) fmt::print(stderr, "compiling {} kernel(s)...\n", units.size());
  const std::vector<CubinResult> results = default_jit().cubins(units);
  nlohmann::json rows = nlohmann::json::array();
  int spilled = 0;
  for (const CubinResult& r : results) {
    const ResourceUsage& u = r.record.usage;
    spilled += u.spills() ? 1 : 0;
    rows.push_back({{"name", r.record.key.spec}, {"arch", r.record.key.arch}, {"key", r.record.key.digest()},
                    {"source", name(r.source)}, {"hit", r.source != CubinSource::compiled},
                    {"ms", r.ms}, {"compile_ms", r.record.compile_ms}, {"registers", u.registers},
                    {"spill_stores", u.spill_stores}, {"spill_loads", u.spill_loads},
                    {"stack_frame", u.stack_frame}, {"shared_static", u.shared_static},
                    {"cubin_bytes", r.record.cubin.size()}});
  }
  if (f.json) {
    fmt::print("{}\n", rows.dump(2));
  } else {
    std::size_t width = 6;
    for (const auto& r : rows) width = std::max(width, r["name"].get<std::string>().size());
    fmt::print("{:<{}} {:<16} {:<9} {:>9} {:>5} {:>7} {:>6}\n", "kernel", width, "key", "result", "ms", "regs",
               "spills", "smem");
    for (const auto& r : rows) {
      const std::string result = r["hit"].get<bool>() ? "hit:" + r["source"].get<std::string>() : "miss";
      fmt::print("{:<{}} {:<16} {:<9} {:>9.1f} {:>5} {:>7} {:>6}\n", r["name"].get<std::string>(), width,
                 r["key"].get<std::string>(), result, r["ms"].get<double>(), r["registers"].get<int>(),
                 r["spill_stores"].get<int>() + r["spill_loads"].get<int>(), r["shared_static"].get<int>());
    }
    fmt::print("{} kernel(s), {} with spills\n", results.size(), spilled);
  }
  if (f.fail_on_spill && spilled > 0) throw Error(Status::internal, fmt::format("{} kernel(s) spill registers", spilled));
}

}  // namespace

std::vector<Arch> target_archs(const std::vector<std::string>& flags) {
  std::vector<Arch> archs;
  for (const auto& a : flags) {
    if (a == "all") return supported_archs();
    archs.push_back(parse_arch(a, "--arch"));
  }
  if (!archs.empty()) return archs;
  if (!gpu_available()) {
    throw InvalidArgument("--arch", "no GPU was found here: name the target(s) (sm_80, sm_86, sm_89, sm_90a, sm_120 or all)");
  }
  return {query_device(current_device_ordinal()).arch()};
}

void add_compile(CLI::App& app) {
  static CompileFlags f;
  auto* cmd = app.add_subcommand("compile", "Compile kernels (for the GPU here, or --arch for any target)");
  cmd->add_option("--arch", f.archs, "Target: sm_80, sm_86, sm_89, sm_90a, sm_120, or all (repeatable)");
  cmd->add_option("--family", f.family, "quant (quantization kernels) or attn (attention kernels)");
  cmd->add_option("--op", f.op, "quant: quantize_q, quantize_k, channel_stats, quantize_v, quantize_kv or quantize_kv_cluster");
  cmd->add_option("--mask", f.mask, "attn: none, causal (top-left) or causal_br (bottom-right)");
  cmd->add_option("--pv", f.pv, "attn: P·V type fp8, f16 or default (what attention() takes: fp8 on sm_90a's "
                               "wgmma kernel and on sm_89/sm_120, else f16)");
  cmd->add_option("--granularity", f.granularity, "attn: per_thread, per_warp or per_block");
  cmd->add_option("--attn-family", f.attn_family, "attn: the kernel family, mma or wgmma (default: as attention() chooses)");
  cmd->add_option("--tile", f.tile, "attn: the tile as tuning names it, e.g. t128x64w8s2 or t64x128w4s1c3; a tile "
                                    "without --attn-family means mma (default: the heuristic's)");
  cmd->add_option("--seq", f.seq, "attn: the query and key length the default kernel is chosen for (4096)");
  cmd->add_flag("--lse", f.lse, "attn: also write the log-sum-exp");
  cmd->add_option("--dtype", f.dtype, "Input dtype: f16 or bf16");
  cmd->add_option("--head-dim", f.head_dim, "64, 96, 128 or 256");
  cmd->add_option("--out", f.out, "quant: int8, int4, int8x2 (Q/K) or fp8_e4m3 (V); attn: the QK type int8, int4 or int8x2");
  cmd->add_flag("--smooth", f.smooth, "Smooth Q (block mean) or K (channel mean) before quantizing");
  cmd->add_flag("--with-v", f.with_v, "quant, --op quantize_kv(_cluster): quantize V to e4m3 in the same kernel");
  cmd->add_flag("--all", f.all, "Every kernel variant of the family for the target(s) (attn: the full matrix)");
  cmd->add_flag("--json", f.json, "Print JSON");
  cmd->add_flag("--fail-on-spill", f.fail_on_spill, "Exit non-zero if any kernel spills registers");
  cmd->callback([] { run(f); });
}

}  // namespace sagejit::cli
