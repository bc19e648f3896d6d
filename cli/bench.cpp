// bench.cpp — `sagejit bench`: our kernel's time and TOPS for one shape on this GPU, as the runtime
// would choose it (tuned record, bundle or heuristic) or as forced (`--family`, `--tile`), optionally
// against the heuristic default, with the CTAs one SM holds of it, and the wall time of a process's
// first call (`--first-call`: what deployment start-up costs).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "autotune/policy.hpp"
#include "autotune/tuner.hpp"
#include "cli/commands.hpp"
#include "cli/shapes.hpp"
#include "runtime/device.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

namespace sagejit::cli {
namespace {

struct BenchFlags {
  std::string shape;
  int repeat = 3;
  bool compare_default = false;
  bool first_call = false;
  bool json = false;
  std::string family;  // with tile: time this variant instead of the runtime's choice
  std::string tile;
  bool separate_q = false;  // AttentionOptions::fused_q = false
  double warmup_ms = TimingOptions{}.warmup_ms;
};

struct Repeated {
  std::vector<double> medians;
  double median() const {
    std::vector<double> v = medians;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  double spread() const {  // (max - min) / median over the repeats: run-to-run variation
    const auto [lo, hi] = std::minmax_element(medians.begin(), medians.end());
    return (*hi - *lo) / median();
  }
};

Repeated repeat_timing(const Problem& p, const AttnSpec& spec, bool end_to_end, int repeat, bool fused_q,
                       double warmup_ms) {
  Repeated r;
  TimingOptions o;
  o.end_to_end = end_to_end;
  o.fused_q = fused_q;
  o.warmup_ms = warmup_ms;
  for (int i = 0; i < std::max(1, repeat); ++i) r.medians.push_back(time_variant(p, spec, o).median_ms);
  return r;
}

nlohmann::json timing_json(const Problem& p, const Repeated& r) {
  return {{"median_ms", r.median()}, {"runs_ms", r.medians}, {"spread", r.spread()},
          {"tops", attention_ops(p) / (r.median() * 1e-3) / 1e12}};
}

void first_call(const Problem& p, bool json) {
  const auto q_elems = std::size_t(p.batch) * p.heads_q * p.seq_q * p.head_dim;
  const auto kv_elems = std::size_t(p.batch) * p.heads_kv * p.seq_kv * p.head_dim;
  DeviceBuffer q(q_elems * 2), k(kv_elems * 2), v(kv_elems * 2), o(q_elems * 2);
  for (DeviceBuffer* b : {&q, &k, &v}) SAGEJIT_CU(cuMemsetD8, b->ptr(), 0, b->bytes());
  auto view = [&](const DeviceBuffer& b, int heads, std::int64_t seq) {
    return TensorRef::contiguous(b.get(), p.dtype, Layout::hnd, p.batch, heads, seq, p.head_dim);
  };
  AttentionOptions opts;
  opts.mask = p.mask, opts.qk = p.qk, opts.pv = p.pv, opts.granularity = p.granularity;
  opts.smooth_q = p.smooth_q, opts.smooth_k = p.smooth_k;
  std::unique_ptr<DeviceBuffer> lse;
  if (p.lse) lse = std::make_unique<DeviceBuffer>(std::size_t(p.batch) * p.heads_q * p.seq_q * 4);
  SAGEJIT_CU(cuCtxSynchronize);
  const auto start = std::chrono::steady_clock::now();
  attention(view(q, p.heads_q, p.seq_q), view(k, p.heads_kv, p.seq_kv), view(v, p.heads_kv, p.seq_kv),
            view(o, p.heads_q, p.seq_q), lse ? static_cast<float*>(lse->get()) : nullptr, opts, nullptr);
  SAGEJIT_CU(cuCtxSynchronize);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const KernelChoice choice = choose_kernel(p, std::nullopt, std::nullopt);  // the same choice as the call's
  const JitStats s = default_jit().stats();
  nlohmann::json j = {{"shape", shape_label(p)}, {"first_call_ms", ms}, {"spec", choice.spec.canonical_name()},
                      {"choice", name(choice.source)},
                      {"cubins", {{"memory", s.memory}, {"disk", s.disk}, {"bundle", s.bundle}, {"compiled", s.compiled}}},
                      {"all_hits", s.compiled == 0}};
  if (json) {
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("first call: {:.1f} ms, {} ({}), cubins: {} from disk, {} from the bundle, {} compiled{}\n", ms,
             choice.spec.canonical_name(), name(choice.source), s.disk, s.bundle, s.compiled,
             s.compiled == 0 ? " (all hits)" : "");
}

void run(const BenchFlags& f) {
  // A forced variant's spelling is checked before anything else (no GPU needed to say it is wrong).
  const std::optional<AttnFamily> family =
      f.family.empty() ? std::nullopt : std::optional(parse_family(f.family, "--family"));
  const std::optional<AttnTile> tile = f.tile.empty() ? std::nullopt : std::optional(parse_tile_name(f.tile, "--tile"));
  if ((family || tile) && f.first_call) {
    throw InvalidArgument("--first-call", "times the runtime's own choice; it does not take --family or --tile");
  }
  if (!gpu_available()) throw NotAvailable("sagejit bench needs a GPU (none was found)");
  const DeviceInfo& device = current_device_info();
  Problem p = parse_shape(f.shape, device.arch());
  p.sm_count = device.sm_count;  // as a call on this device sees it (the default's wave rule)
  if (f.first_call) return first_call(p, f.json);
  KernelChoice choice;
  if (!family && !tile) {
    choice = choose_kernel(p, std::nullopt, std::nullopt);
  } else {  // forced, as a caller's AttentionOptions::family / ::tile; every template rule checked
    choice = {forced_spec(p, family, tile), ChoiceSource::caller};
    choice.spec.validate();
  }
  // What the call runs: the single-warpgroup form quantizes Q itself unless told not to.
  const bool fused_q = !f.separate_q;
  choice.spec.quant.fused_q = fused_q && can_fuse_q(choice.spec);
  nlohmann::json j = {{"shape", shape_label(p)}, {"bucket", bucket_name(p)}, {"device", current_device_info().name},
                      {"spec", choice.spec.canonical_name()}, {"choice", name(choice.source)}};
  j["kernel"] = timing_json(p, repeat_timing(p, choice.spec, false, f.repeat, fused_q, f.warmup_ms));
  j["ctas_per_sm"] = default_jit().kernel(choice.spec.generate()).resident_ctas(
      static_cast<unsigned>(choice.spec.threads()), static_cast<unsigned>(choice.spec.shared_bytes()));
  j["end_to_end"] = timing_json(p, repeat_timing(p, choice.spec, true, f.repeat, fused_q, f.warmup_ms));
  if (f.compare_default) {
    AttnSpec def = default_spec(p);
    def.quant.fused_q = fused_q && can_fuse_q(def);
    j["default_spec"] = def.canonical_name();
    j["default_kernel"] = timing_json(p, repeat_timing(p, def, false, f.repeat, fused_q, f.warmup_ms));
    j["default_end_to_end"] = timing_json(p, repeat_timing(p, def, true, f.repeat, fused_q, f.warmup_ms));
    j["gain_kernel"] = j["default_kernel"]["median_ms"].get<double>() / j["kernel"]["median_ms"].get<double>();
    j["gain_end_to_end"] =
        j["default_end_to_end"]["median_ms"].get<double>() / j["end_to_end"]["median_ms"].get<double>();
  }
  if (f.json) {
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{} on {}\n{} ({}; {} CTAs per SM)\n", shape_label(p), current_device_info().name,
             choice.spec.canonical_name(), name(choice.source), j["ctas_per_sm"].get<int>());
  auto line = [&](const char* what, const nlohmann::json& t) {
    fmt::print("  {:<22} {:>9.4f} ms {:>7.1f} TOPS  (spread over {} repeats {:.1f}%)\n", what, t["median_ms"].get<double>(),
               t["tops"].get<double>(), t["runs_ms"].size(), 100 * t["spread"].get<double>());
  };
  line("kernel only", j["kernel"]);
  line("end to end", j["end_to_end"]);
  if (f.compare_default) {
    fmt::print("heuristic default: {}\n", j["default_spec"].get<std::string>());
    line("kernel only", j["default_kernel"]);
    line("end to end", j["default_end_to_end"]);
    fmt::print("gain: {:.3f}x kernel only, {:.3f}x end to end\n", j["gain_kernel"].get<double>(),
               j["gain_end_to_end"].get<double>());
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  static BenchFlags f;
  auto* cmd = app.add_subcommand("bench", "Time our kernel on one shape (TOPS), as the runtime chooses it");
  cmd->add_option("--shape", f.shape, "The shape: \"b=4 hq=32 sq=4096 d=128 mask=causal ...\" (see sagejit tune)");
  cmd->add_option("--repeat", f.repeat, "Independent timings (each a median of 20-100 runs); spread is over these");
  cmd->add_flag("--compare-default", f.compare_default, "Also time the heuristic default and print the gain");
  cmd->add_flag("--first-call", f.first_call, "Only measure the wall time of this process's first call");
  cmd->add_flag("--json", f.json, "Print JSON");
  cmd->add_option("--family", f.family, "Time this kernel family (mma or wgmma) instead of the runtime's choice");
  cmd->add_option("--tile", f.tile,
                  "Time this tile instead of the runtime's choice, as tune names it (t64x128w4s3c2p; family "
                  "mma unless --family says otherwise)");
  add_warmup_option(cmd, f.warmup_ms, "each timing");
  cmd->add_flag("--separate-q", f.separate_q,
                "Quantize Q in its own pass even where the kernel would do it (AttentionOptions::fused_q = false)");
  cmd->callback([] { run(f); });
}

CLI::Option* add_warmup_option(CLI::App* cmd, double& warmup_ms, const std::string& before_what) {
  constexpr double kMaxWarmupMs = 60000;
  const CLI::Validator in_range(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        const bool parsed = !text.empty() && end == text.c_str() + text.size();
        return parsed && v >= 0 && v <= kMaxWarmupMs ? std::string() : "a number of milliseconds from 0 to 60000";
      },
      "MS in [0, 60000]");
  return cmd
      ->add_option("--warmup-ms", warmup_ms,
                   fmt::format("Untimed calls before {}, in ms of wall time (the card's clock settles under "
                               "its power cap over about half a second of load)",
                               before_what))
      ->check(in_range)
      ->capture_default_str();
}

}  // namespace sagejit::cli
