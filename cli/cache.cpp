// cache.cpp — `sagejit cache list [--stale]`, `cache prune` and `cache clear`.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "autotune/policy.hpp"
#include "autotune/records.hpp"
#include "cli/commands.hpp"
#include "generator/embedded.hpp"
#include "generator/unit.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"
#include "runtime/nvrtc.hpp"

namespace sagejit::cli {
namespace {

// What "stale" is measured against: this build's templates and generator, this machine's NVRTC
// (when it has one) and, with a GPU, this GPU and driver.
TuningEnv here() {
  if (gpu_available()) {
    try {
      return current_environment(current_device_ordinal());
    } catch (const Error&) {
    }
  }
  TuningEnv env;
  env.template_hash = std::string(embedded_templates_hash());
  try {
    env.nvrtc_version = nvrtc_version_string();
  } catch (const NotAvailable&) {
    env.nvrtc_version = "none";
  }
  return env;
}

// A cubin no build of this sagejit will ask for: other templates, generator or (where known) NVRTC.
bool cubin_stale(const CubinRow& r, const TuningEnv& env) {
  return r.key.template_hash != env.template_hash || r.key.generator_version != kGeneratorVersion ||
         (env.nvrtc_version != "none" && r.key.nvrtc_version != env.nvrtc_version);
}

struct StaleRows {
  std::vector<CubinRow> cubins;
  std::vector<TuningWinner> winners;
  std::size_t records = 0;
};

StaleRows stale_rows(const TuningEnv& env) {
  StaleRows s;
  for (CubinRow& r : default_jit().store().list()) {
    if (cubin_stale(r, env)) s.cubins.push_back(std::move(r));
  }
  for (TuningWinner& w : default_tuning_store().winners()) {
    if (is_stale(w.env, env)) s.winners.push_back(std::move(w));
  }
  for (const TuningRecord& r : default_tuning_store().all_records()) s.records += is_stale(r.env, env);
  return s;
}

}  // namespace

void add_cache(CLI::App& app) {
  auto* cache = app.add_subcommand("cache", "Inspect or clear the kernel cache");
  cache->require_subcommand(1);
  static bool json = false;
  static bool stale = false;
  auto* list = cache->add_subcommand("list", "List cached kernels and tuned choices");
  list->add_flag("--json", json, "Print JSON");
  list->add_flag("--stale", stale, "Only rows this build can never use (other templates, generator, NVRTC or driver)");
  list->callback([] {
    const TuningEnv env = here();
    std::vector<CubinRow> rows = default_jit().store().list();
    std::vector<TuningWinner> winners = default_tuning_store().winners();
    if (stale) {
      StaleRows s = stale_rows(env);
      rows = std::move(s.cubins);
      winners = std::move(s.winners);
    }
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const CubinRow& r : rows) {
        out.push_back({{"key", r.digest}, {"spec", r.key.spec}, {"arch", r.key.arch},
                       {"template_hash", r.key.template_hash}, {"generator_version", r.key.generator_version},
                       {"nvrtc_version", r.key.nvrtc_version}, {"options", r.key.options},
                       {"lowered_name", r.lowered_name}, {"registers", r.usage.registers},
                       {"spill_stores", r.usage.spill_stores}, {"spill_loads", r.usage.spill_loads},
                       {"compile_ms", r.compile_ms}, {"bytes", r.bytes}, {"created_at", r.created_at},
                       {"stale", cubin_stale(r, env)}});
      }
      nlohmann::json tuned = nlohmann::json::array();
      for (const TuningWinner& w : winners) {
        tuned.push_back({{"device_name", w.env.device_name}, {"arch", w.env.arch}, {"sm_count", w.env.sm_count},
                         {"driver_version", w.env.driver_version}, {"nvrtc_version", w.env.nvrtc_version},
                         {"template_hash", w.env.template_hash}, {"bucket", w.bucket}, {"family", w.family},
                         {"tile", w.tile}, {"median_ms", w.median_ms}, {"created_at", w.created_at},
                         {"stale", is_stale(w.env, env)}});
      }
      fmt::print("{}\n", nlohmann::json{{"cubins", out}, {"tuned", tuned}}.dump(2));
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
    fmt::print("{} {}cubin(s) in {}\n", rows.size(), stale ? "stale " : "", default_jit().store().info().path.string());
    if (!winners.empty()) {
      fmt::print("\n{:<28} {:<7} {:>4} {:<7} {:<56} {:<6} {:<16} {:>9}\n", "tuned on", "arch", "SMs", "driver", "bucket",
                 "family", "tile", "ms");
      for (const TuningWinner& w : winners) {
        fmt::print("{:<28} {:<7} {:>4} {:<7} {:<56} {:<6} {:<16} {:>9.4f}{}\n", w.env.device_name, w.env.arch,
                   w.env.sm_count, w.env.driver_version, w.bucket, w.family, w.tile, w.median_ms,
                   !stale && is_stale(w.env, env) ? "  (stale)" : "");
      }
    }
    fmt::print("{} {}tuned choice(s)\n", winners.size(), stale ? "stale " : "");
  });
  auto* prune = cache->add_subcommand("prune", "Remove the rows `cache list --stale` shows");
  prune->callback([] {
    const StaleRows s = stale_rows(here());
    std::vector<std::string> digests;
    for (const CubinRow& r : s.cubins) digests.push_back(r.digest);
    const auto cubins = default_jit().store().remove(digests);
    const TuningEnv env = here();
    const auto tuning = default_tuning_store().prune([&](const TuningEnv& e) { return is_stale(e, env); });
    fmt::print("removed {} stale cubin(s) and {} stale tuning row(s) from {}\n", cubins, tuning,
               default_jit().store().info().path.string());
  });
  auto* clear = cache->add_subcommand("clear", "Remove every cached kernel");
  clear->callback([] {
    const auto n = default_jit().store().clear();
    fmt::print("removed {} cubin(s) from {}\n", n, default_jit().store().info().path.string());
  });
}

}  // namespace sagejit::cli
