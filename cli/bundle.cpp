// bundle.cpp — `sagejit export` (cubins for the requested archs and shapes plus a manifest naming
// each spec and tuned winner, into a directory or a single file) and `sagejit import`.
//
// Export needs no GPU: it compiles for any arch and takes the tuned winners from the records in
// the cache (those of that arch, built from this build's templates, from any GPU model), plus the
// heuristic default of every shape so that a GPU without a record still finds its kernel.
#include <fmt/format.h>

#include <set>

#include "autotune/policy.hpp"
#include "autotune/records.hpp"
#include "cache/bundle.hpp"
#include "cli/commands.hpp"
#include "cli/shapes.hpp"
#include "generator/embedded.hpp"
#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

namespace sagejit::cli {
namespace {

struct ExportFlags {
  std::vector<std::string> archs;
  std::vector<std::string> shapes;
  std::string shapes_file;
  std::string out;
  std::string format = "auto";
  std::string device;
};

BundleFormat export_format(const std::string& format, const std::string& out) {
  if (format == "dir") return BundleFormat::directory;
  if (format == "file") return BundleFormat::file;
  if (format != "auto") throw InvalidArgument("--format", fmt::format("must be dir, file or auto (got '{}')", format));
  return out.ends_with(".sjb") ? BundleFormat::file : BundleFormat::directory;
}

void run_export(const ExportFlags& f) {
  if (f.out.empty()) throw InvalidArgument("--out", "is required: the bundle directory, or a file ending in .sjb");
  const BundleFormat format = export_format(f.format, f.out);
  const std::string templates(embedded_templates_hash());
  const std::vector<TuningWinner> all_winners = default_tuning_store().winners();
  std::vector<GeneratedUnit> units;
  std::set<std::string> unit_names;
  auto add_unit = [&](const GeneratedUnit& u) {
    if (unit_names.insert(u.spec_name + "@" + u.arch.name()).second) units.push_back(u);
  };
  Bundle bundle;
  int tuned = 0;
  for (const Arch& arch : target_archs(f.archs)) {
    for (const Problem& p : parse_shapes(f.shapes, f.shapes_file, arch)) {
      const std::string bucket = bucket_name(p);
      std::vector<AttnSpec> specs = default_specs_any_device(p);  // the target's SM count is not known here
      for (const TuningWinner& w : all_winners) {
        if (w.env.arch != arch.name() || w.env.template_hash != templates || w.bucket != bucket) continue;
        if (!f.device.empty() && w.env.device_name != f.device) continue;
        if (auto s = spec_of_winner(p, w)) {
          specs.push_back(*s);
          bundle.add(w);
          ++tuned;
        }
      }
      for (const AttnSpec& s : specs) add_unit(s.generate());
      for (const QuantSpec& q : quant_specs_for_call(arch, p.dtype, p.head_dim, p.qk, p.smooth_q, p.smooth_k,
                                                     default_spec(p).quant.pv == PvType::fp8_e4m3)) {
        add_unit(q.generate());
      }
    }
  }
  fmt::print(stderr, "compiling {} kernel(s) for the bundle...\n", units.size());
  for (const CubinResult& r : default_jit().cubins(units)) bundle.add(r.record);
  bundle.write(f.out, format);
  fmt::print("wrote {} ({}): {} kernel(s), {} tuned choice(s)\n", f.out,
             format == BundleFormat::file ? "single file" : "directory", bundle.kernels().size(),
             bundle.winners().size());
  if (tuned == 0) fmt::print("no tuning records matched: the bundle holds the heuristic defaults only\n");
}

}  // namespace

void add_export(CLI::App& app) {
  static ExportFlags f;
  auto* cmd = app.add_subcommand("export", "Export cubins and tuned choices for archs and shapes into a bundle");
  cmd->add_option("--arch", f.archs, "Target: sm_80, sm_86, sm_89, sm_90a, sm_120 or all (repeatable; default: this GPU)");
  cmd->add_option("--shape", f.shapes, "A shape, as for sagejit tune (repeatable)");
  cmd->add_option("--shapes-file", f.shapes_file, "A file with one shape per line");
  cmd->add_option("--out", f.out, "The bundle: a directory, or a single file (--format file, or a name ending in .sjb)");
  cmd->add_option("--format", f.format, "dir, file, or auto (file when --out ends in .sjb)");
  cmd->add_option("--device", f.device, "Only the tuned choices measured on this GPU name");
  cmd->callback([] { run_export(f); });
}

void add_import(CLI::App& app) {
  static std::string path;
  auto* cmd = app.add_subcommand("import", "Import a bundle's cubins and tuned choices into the cache");
  cmd->add_option("bundle", path, "The bundle directory or file")->required();
  cmd->callback([] {
    const Bundle b = Bundle::read(path);
    const ImportSummary s = import_bundle(b, default_jit().store(), default_tuning_store());
    fmt::print("imported {} kernel(s) and {} tuned choice(s) into {}{}\n", s.kernels, s.winners_added,
               default_jit().store().info().path.string(),
               s.winners_kept ? fmt::format("; {} choice(s) kept the winner already stored", s.winners_kept) : "");
  });
}

}  // namespace sagejit::cli
