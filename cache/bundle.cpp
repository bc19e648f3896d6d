// bundle.cpp — the bundle's manifest, its two on-disk forms, and lookups.
#include "cache/bundle.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <tuple>

#include "runtime/error.hpp"
#include "runtime/hash.hpp"

namespace sagejit {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kMagic = "sagejit-bundle";
constexpr const char* kManifestName = "manifest.json";

std::string checksum(const std::vector<char>& blob) { return hex64(fnv1a64(blob.data(), blob.size())); }

auto slot(const TuningWinner& w) {
  return std::tie(w.env.device_name, w.env.arch, w.env.sm_count, w.env.driver_version, w.env.nvrtc_version,
                  w.env.template_hash, w.bucket);
}

[[noreturn]] void bad(const fs::path& path, const std::string& what) {
  throw InvalidArgument("bundle", fmt::format("{}: {}", path.string(), what));
}

std::vector<char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad(path, "cannot be read");
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, std::string_view a, const std::vector<char>* b = nullptr) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InvalidArgument("bundle", fmt::format("{}: cannot be written", path.string()));
  out.write(a.data(), static_cast<std::streamsize>(a.size()));
  if (b) out.write(b->data(), static_cast<std::streamsize>(b->size()));
  if (!out) throw InvalidArgument("bundle", fmt::format("{}: write failed", path.string()));
}

json env_json(const TuningEnv& e) {
  return {{"device_name", e.device_name}, {"arch", e.arch}, {"sm_count", e.sm_count},
          {"driver_version", e.driver_version}, {"nvrtc_version", e.nvrtc_version},
          {"template_hash", e.template_hash}};
}

// Parses the manifest into a bundle; `blob(entry)` returns the bytes of one kernel entry.
template <class BlobOf>
Bundle parse(const fs::path& path, const std::string& text, BlobOf&& blob) {
  json m;
  try {
    m = json::parse(text);
  } catch (const json::exception& e) {
    bad(path, fmt::format("the manifest is not JSON ({})", e.what()));
  }
  try {
    if (m.value("format", "") != kMagic) bad(path, "the manifest's format is not \"sagejit-bundle\"");
    if (m.value("version", 0) != kBundleVersion) {
      bad(path, fmt::format("bundle version {} is not supported (this build reads {})", m.value("version", 0),
                            kBundleVersion));
    }
    Bundle b;
    for (const json& k : m.at("kernels")) {
      CubinRecord r;
      r.key = {k.at("spec"), k.at("template_hash"), k.at("generator_version"), k.at("nvrtc_version"),
               k.at("options"), k.at("arch")};
      r.lowered_name = k.at("lowered_name");
      const json& u = k.at("usage");
      r.usage = {u.at("registers"), u.at("stack_frame"), u.at("spill_stores"), u.at("spill_loads"),
                 u.at("shared_static"), u.at("constant")};
      r.compile_ms = k.at("compile_ms");
      r.cubin = blob(k);
      if (checksum(r.cubin) != k.at("checksum").get<std::string>()) {
        bad(path, fmt::format("kernel {} ({}) fails its checksum", r.key.spec, r.key.arch));
      }
      if (r.key.digest() != k.at("digest").get<std::string>()) {
        bad(path, fmt::format("kernel {} ({}): its digest does not match its key", r.key.spec, r.key.arch));
      }
      b.add(r);
    }
    for (const json& t : m.at("tuned")) {
      TuningWinner w;
      const json& e = t.at("env");
      w.env = {e.at("device_name"), e.at("arch"), e.at("sm_count"), e.at("driver_version"), e.at("nvrtc_version"),
               e.at("template_hash")};
      w.bucket = t.at("bucket"), w.family = t.at("family"), w.tile = t.at("tile"), w.spec = t.at("spec");
      w.median_ms = t.at("median_ms");
      if (t.contains("default_ms") && !t.at("default_ms").is_null()) w.default_ms = t.at("default_ms").get<double>();
      b.add(w);
    }
    return b;
  } catch (const json::exception& e) {
    bad(path, fmt::format("malformed manifest ({})", e.what()));
  }
}

}  // namespace

void Bundle::add(const CubinRecord& record) {
  const std::string digest = record.key.digest();
  auto it = std::lower_bound(kernels_.begin(), kernels_.end(), digest,
                             [](const CubinRecord& r, const std::string& d) { return r.key.digest() < d; });
  if (it != kernels_.end() && it->key.digest() == digest) {
    *it = record;
  } else {
    kernels_.insert(it, record);
  }
}

void Bundle::add(const TuningWinner& winner) {
  TuningWinner w = winner;
  w.run_id.clear();
  w.created_at.clear();
  auto it = std::lower_bound(winners_.begin(), winners_.end(), w,
                             [](const TuningWinner& a, const TuningWinner& b) { return slot(a) < slot(b); });
  if (it != winners_.end() && slot(*it) == slot(w)) {
    *it = w;
  } else {
    winners_.insert(it, w);
  }
}

const CubinRecord* Bundle::find(const std::string& spec, const std::string& arch, const std::string& template_hash,
                                const std::string& generator_version) const {
  for (const CubinRecord& r : kernels_) {
    if (r.key.spec == spec && r.key.arch == arch && r.key.template_hash == template_hash &&
        r.key.generator_version == generator_version) {
      return &r;
    }
  }
  return nullptr;
}

std::optional<TuningWinner> Bundle::winner(const TuningEnv& env, const std::string& bucket) const {
  for (const TuningWinner& w : winners_) {
    if (w.bucket == bucket && w.env.device_name == env.device_name && w.env.arch == env.arch &&
        w.env.sm_count == env.sm_count && w.env.template_hash == env.template_hash) {
      return w;
    }
  }
  return std::nullopt;
}

std::string Bundle::manifest(BundleFormat format) const {
  json kernels = json::array();
  std::size_t offset = 0;
  for (const CubinRecord& r : kernels_) {
    const std::string digest = r.key.digest();
    json k = {{"digest", digest},
              {"spec", r.key.spec},
              {"arch", r.key.arch},
              {"template_hash", r.key.template_hash},
              {"generator_version", r.key.generator_version},
              {"nvrtc_version", r.key.nvrtc_version},
              {"options", r.key.options},
              {"lowered_name", r.lowered_name},
              {"usage", {{"registers", r.usage.registers}, {"stack_frame", r.usage.stack_frame},
                         {"spill_stores", r.usage.spill_stores}, {"spill_loads", r.usage.spill_loads},
                         {"shared_static", r.usage.shared_static}, {"constant", r.usage.constant}}},
              {"compile_ms", r.compile_ms},
              {"bytes", r.cubin.size()},
              {"checksum", checksum(r.cubin)}};
    if (format == BundleFormat::directory) {
      k["file"] = "kernels/" + digest + ".cubin";
    } else {
      k["offset"] = offset;
      offset += r.cubin.size();
    }
    kernels.push_back(std::move(k));
  }
  json tuned = json::array();
  for (const TuningWinner& w : winners_) {
    tuned.push_back({{"env", env_json(w.env)}, {"bucket", w.bucket}, {"family", w.family}, {"tile", w.tile},
                     {"spec", w.spec}, {"median_ms", w.median_ms},
                     {"default_ms", w.default_ms ? json(*w.default_ms) : json(nullptr)}});
  }
  json m = {{"format", kMagic}, {"version", kBundleVersion}, {"kernels", kernels}, {"tuned", tuned}};
  return m.dump(2) + "\n";
}

void Bundle::write(const fs::path& path, BundleFormat format) const {
  const std::string m = manifest(format);
  if (format == BundleFormat::directory) {
    fs::create_directories(path / "kernels");
    for (const CubinRecord& r : kernels_) write_bytes(path / "kernels" / (r.key.digest() + ".cubin"), "", &r.cubin);
    write_bytes(path / kManifestName, m);
    return;
  }
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::vector<char> blobs;
  for (const CubinRecord& r : kernels_) blobs.insert(blobs.end(), r.cubin.begin(), r.cubin.end());
  write_bytes(path, fmt::format("{} {}\n{}\n{}", kMagic, kBundleVersion, m.size(), m), &blobs);
}

Bundle Bundle::read(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const std::vector<char> m = read_bytes(path / kManifestName);
    return parse(path, std::string(m.begin(), m.end()), [&](const json& k) {
      const std::string file = k.at("file");
      if (file.find("..") != std::string::npos) bad(path, fmt::format("kernel file '{}' leaves the bundle", file));
      std::vector<char> blob = read_bytes(path / file);
      if (blob.size() != k.at("bytes").get<std::size_t>()) bad(path, fmt::format("{} is truncated", file));
      return blob;
    });
  }
  if (!fs::exists(path, ec)) bad(path, "does not exist");
  const std::vector<char> bytes = read_bytes(path);
  const std::string_view all(bytes.data(), bytes.size());
  const std::string header = fmt::format("{} ", kMagic);
  const auto line1 = all.find('\n');
  if (!all.starts_with(header) || line1 == std::string_view::npos) bad(path, "is not a sagejit bundle");
  if (all.substr(header.size(), line1 - header.size()) != std::to_string(kBundleVersion)) {
    bad(path, fmt::format("bundle version '{}' is not supported (this build reads {})",
                          all.substr(header.size(), line1 - header.size()), kBundleVersion));
  }
  const auto line2 = all.find('\n', line1 + 1);
  std::size_t length = 0;
  try {
    length = std::stoull(std::string(all.substr(line1 + 1, line2 - line1 - 1)));
  } catch (const std::exception&) {
    bad(path, "the manifest length is not a number");
  }
  const std::size_t start = line2 + 1;
  if (line2 == std::string_view::npos || start + length > all.size()) bad(path, "is truncated (manifest)");
  const std::size_t blobs = start + length;
  return parse(path, std::string(all.substr(start, length)), [&](const json& k) {
    const std::size_t offset = k.at("offset"), size = k.at("bytes");
    if (blobs + offset + size > all.size()) bad(path, fmt::format("is truncated (kernel {})", k.at("spec").get<std::string>()));
    return std::vector<char>(bytes.begin() + static_cast<std::ptrdiff_t>(blobs + offset),
                             bytes.begin() + static_cast<std::ptrdiff_t>(blobs + offset + size));
  });
}

ImportSummary import_bundle(const Bundle& b, CubinStore& cubins, TuningStore& tuning) {
  ImportSummary summary;
  for (const CubinRecord& r : b.kernels()) {
    cubins.put(r);
    ++summary.kernels;
  }
  for (const TuningWinner& w : b.winners()) {
    const TuningWinner stored = tuning.put_winner(w);
    const bool same = stored.family == w.family && stored.tile == w.tile;
    ++(same ? summary.winners_added : summary.winners_kept);
  }
  return summary;
}

}  // namespace sagejit
