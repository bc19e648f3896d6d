// tune.cpp — `sagejit tune`: tune the kernel variant of each given shape on this GPU and store every
// candidate and the winner in the cache; print default vs best per shape (or JSON).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "autotune/policy.hpp"
#include "autotune/records.hpp"
#include "autotune/tuner.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "cli/shapes.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

namespace sagejit::cli {
namespace {

struct TuneFlags {
  std::vector<std::string> shapes;
  std::string shapes_file;
  bool force = false;
  bool json = false;
  bool end_to_end = false;
  int max_candidates = 0;
  double warmup_ms = TimingOptions{}.warmup_ms;
};

nlohmann::json candidate_json(const CandidateResult& c) {
  nlohmann::json j = {{"family", c.record.family}, {"tile", c.record.tile}, {"spec", c.record.spec},
                      {"default", c.is_default}, {"status", c.record.status}, {"runs", c.record.runs},
                      {"registers", c.usage.registers}};
  if (c.record.median_ms) j["median_ms"] = *c.record.median_ms, j["spread"] = c.record.spread;
  if (!c.record.reason.empty()) j["reason"] = c.record.reason;
  return j;
}

void run(const TuneFlags& f) {
  if (!gpu_available()) throw NotAvailable("sagejit tune needs a GPU (none was found): it times every candidate");
  const int ordinal = current_device_ordinal();
  const TuningEnv env = current_environment(ordinal);
  const DeviceInfo device = query_device(ordinal);
  std::vector<Problem> problems = parse_shapes(f.shapes, f.shapes_file, device.arch());
  for (Problem& p : problems) p.sm_count = device.sm_count;  // as a call on this device sees it
  nlohmann::json out = nlohmann::json::array();
  for (const Problem& p : problems) {
    ProgressBar bar(fmt::format("tune {}", shape_label(p)));
    TuneOptions o;
    o.force = f.force;
    o.max_candidates = f.max_candidates;
    o.timing.end_to_end = f.end_to_end;
    o.timing.warmup_ms = f.warmup_ms;
    o.progress = [&](const TuneProgress& pr) { bar.update(pr.phase, pr.done, pr.total); };
    const TuneResult r = tune_and_store(p, o, default_tuning_store(), default_jit(), env);
    bar.finish();
    nlohmann::json j = {{"shape", shape_label(p)}, {"bucket", r.bucket}, {"already_tuned", r.already_tuned},
                        {"adopted", r.adopted}, {"seconds", r.seconds}, {"compile_seconds", r.compile_seconds},
                        {"time_seconds", r.time_seconds}, {"pruned_static", r.pruned.size()},
                        {"default_spec", default_spec(p).canonical_name()},
                        {"default_family", name(default_spec(p).family)}, {"default_tile", default_spec(p).tile.name()}};
    if (r.default_ms) j["default_ms"] = *r.default_ms;
    if (r.winner) {
      j["winner"] = {{"family", r.winner->family}, {"tile", r.winner->tile}, {"spec", r.winner->spec},
                     {"median_ms", r.winner->median_ms}};
      for (const CandidateResult& c : r.candidates) {
        if (c.record.family == r.winner->family && c.record.tile == r.winner->tile) j["winner"]["spread"] = c.record.spread;
      }
      if (r.default_ms) j["gain"] = *r.default_ms / r.winner->median_ms;
    }
    nlohmann::json cands = nlohmann::json::array();
    int ok = 0;
    for (const CandidateResult& c : r.candidates) {
      cands.push_back(candidate_json(c));
      ok += c.record.status == "ok";
    }
    j["candidates"] = cands;
    j["timed"] = ok;
    out.push_back(j);
  }
  if (f.json) {
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("{:<44} {:>6} {:<22} {:>10} {:<22} {:>10} {:>6} {:>7} {:>6}\n", "shape", "timed", "default", "ms",
             "best", "ms", "gain", "spread", "secs");
  for (const auto& j : out) {
    const std::string def_tile = j["default_tile"], def_family = j["default_family"];
    const std::string best = j.contains("winner") ? j["winner"]["family"].get<std::string>() + " " +
                                                        j["winner"]["tile"].get<std::string>()
                                                  : "-";
    fmt::print("{:<44} {:>6} {:<22} {:>10} {:<22} {:>10} {:>6} {:>7} {:>6.1f}{}\n", j["shape"].get<std::string>(),
               j["already_tuned"].get<bool>() ? std::string("stored") : std::to_string(j["timed"].get<int>()),
               def_family + " " + def_tile,
               j.contains("default_ms") ? fmt::format("{:.4f}", j["default_ms"].get<double>()) : "-", best,
               j.contains("winner") ? fmt::format("{:.4f}", j["winner"]["median_ms"].get<double>()) : "-",
               j.contains("gain") ? fmt::format("{:.3f}x", j["gain"].get<double>()) : "-",
               j.contains("winner") && j["winner"].contains("spread")
                   ? fmt::format("{:.1f}%", 100 * j["winner"]["spread"].get<double>())
                   : "-",
               j["seconds"].get<double>(), j["adopted"].get<bool>() ? "  (another run's winner kept)" : "");
  }
  fmt::print("records in {}\n", default_jit().store().info().path.string());
}

}  // namespace

void add_tune(CLI::App& app) {
  static TuneFlags f;
  auto* cmd = app.add_subcommand("tune", "Tune the kernel variant of each shape on this GPU and store the results");
  cmd->add_option("--shape", f.shapes, "A shape: \"b=4 hq=32 hkv=8 sq=4096 skv=4096 d=128 mask=causal ...\" (repeatable)");
  cmd->add_option("--shapes-file", f.shapes_file, "A file with one shape per line");
  cmd->add_flag("--force", f.force, "Tune again even if a winner is stored (replaces it)");
  cmd->add_flag("--end-to-end", f.end_to_end, "Time quantization + attention (default: the attention kernel only)");
  cmd->add_option("--max-candidates", f.max_candidates, "Time at most this many variants (the default included)");
  add_warmup_option(cmd, f.warmup_ms, "each candidate's timing");
  cmd->add_flag("--json", f.json, "Print JSON (every candidate with its time or reason)");
  cmd->callback([] { run(f); });
}

}  // namespace sagejit::cli
