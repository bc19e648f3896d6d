// cache.cpp — `sagejit cache list` and `sagejit cache clear`.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "runtime/jit.hpp"

namespace sagejit::cli {

void add_cache(CLI::App& app) {
  auto* cache = app.add_subcommand("cache", "Inspect or clear the kernel cache");
  cache->require_subcommand(1);
  static bool json = false;
  auto* list = cache->add_subcommand("list", "List cached kernels");
  list->add_flag("--json", json, "Print JSON");
  list->callback([] {
    const std::vector<CubinRow> rows = default_jit().store().list();
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const CubinRow& r : rows) {
        out.push_back({{"key", r.digest}, {"spec", r.key.spec}, {"arch", r.key.arch},
                       {"template_hash", r.key.template_hash}, {"generator_version", r.key.generator_version},
                       {"nvrtc_version", r.key.nvrtc_version}, {"options", r.key.options},
                       {"lowered_name", r.lowered_name}, {"registers", r.usage.registers},
                       {"spill_stores", r.usage.spill_stores}, {"spill_loads", r.usage.spill_loads},
                       {"compile_ms", r.compile_ms}, {"bytes", r.bytes}, {"created_at", r.created_at}});
      }
      fmt::print("{}\n", out.dump(2));
      return;
    }
    std::size_t width = 6;
    for (const CubinRow& r : rows) width = std::max(width, r.key.spec.size());
    fmt::print("{:<{}} {:<7} {:<16} {:<6} {:>5} {:>7} {:>8} {}\n", "kernel", width, "arch", "templates", "nvrtc",
               "regs", "spills", "bytes", "created");
    for (const CubinRow& r : rows) {
      fmt::print("{:<{}} {:<7} {:<16} {:<6} {:>5} {:>7} {:>8} {}\n", r.key.spec, width, r.key.arch, r.key.template_hash,
                 r.key.nvrtc_version, r.usage.registers, r.usage.spill_stores + r.usage.spill_loads, r.bytes,
                 r.created_at);
    }
    fmt::print("{} cubin(s) in {}\n", rows.size(), default_jit().store().info().path.string());
  });
  auto* clear = cache->add_subcommand("clear", "Remove every cached kernel");
  clear->callback([] {
    const auto n = default_jit().store().clear();
    fmt::print("removed {} cubin(s) from {}\n", n, default_jit().store().info().path.string());
  });
}

}  // namespace sagejit::cli
