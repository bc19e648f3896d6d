// records.cpp — environment, winner choice and staleness of tuning records.
#include "autotune/records.hpp"

#include <fmt/format.h>

#include <tuple>

#include "generator/embedded.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/nvrtc.hpp"

namespace sagejit {

std::string driver_version_string(int version) { return fmt::format("{}.{}", version / 1000, (version % 1000) / 10); }

TuningEnv current_environment(int ordinal) {
  const DeviceInfo d = query_device(ordinal);
  TuningEnv env;
  env.device_name = d.name;
  env.arch = d.arch().name();
  env.sm_count = d.sm_count;
  env.driver_version = driver_version_string(d.driver_version);
  try {
    env.nvrtc_version = nvrtc_version_string();
  } catch (const NotAvailable&) {
    env.nvrtc_version = "none";
  }
  env.template_hash = std::string(embedded_templates_hash());
  return env;
}

std::optional<TuningRecord> pick_winner(const std::vector<TuningRecord>& records, const std::string& default_family,
                                        const std::string& default_tile) {
  const TuningRecord* best = nullptr;
  const TuningRecord* fallback = nullptr;  // the default's own record, if it was timed
  for (const TuningRecord& r : records) {
    if (r.status != "ok" || !r.median_ms) continue;
    if (r.family == default_family && r.tile == default_tile &&
        (!fallback || *r.median_ms < *fallback->median_ms)) {
      fallback = &r;
    }
    if (!best || std::tie(*r.median_ms, r.family, r.tile) < std::tie(*best->median_ms, best->family, best->tile)) {
      best = &r;
    }
  }
  if (!best) return std::nullopt;
  if (fallback && *fallback->median_ms <= *best->median_ms * (1 + kWinMargin)) return *fallback;
  return *best;
}

std::optional<AttnSpec> spec_of_winner(const Problem& p, const TuningWinner& w) {
  try {
    AttnSpec s = with_variant(p, parse_family(w.family), parse_tile_name(w.tile));
    if (!family_unfit(p, s.family).empty()) return std::nullopt;
    s.validate();
    return s;
  } catch (const InvalidArgument&) {
    return std::nullopt;
  }
}

bool is_stale(const TuningEnv& row, const TuningEnv& current) {
  if (row.template_hash != current.template_hash) return true;
  if (current.nvrtc_version != "none" && row.nvrtc_version != current.nvrtc_version) return true;
  const bool same_gpu = !current.device_name.empty() && row.device_name == current.device_name &&
                        row.sm_count == current.sm_count && row.arch == current.arch;
  return same_gpu && row.driver_version != current.driver_version;
}

}  // namespace sagejit
