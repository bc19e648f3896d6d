// bundle.hpp — an exported set of cubins plus a manifest naming each spec and the tuned winners,
// for JIT-free deployment (`sagejit export` / `sagejit import`, SAGEJIT_BUNDLE).
//
// Two forms, same manifest:
//   - a directory: manifest.json and kernels/<digest>.cubin;
//   - a single file: the line "sagejit-bundle 1", the manifest's length in bytes on the next line,
//     the manifest, then every cubin back to back at the offset its entry gives.
// The manifest holds no time stamps and lists kernels by digest and winners by (environment,
// bucket), so writing the same content twice gives the same bytes: export → import → export is
// byte-identical. Each kernel carries its checksum (FNV-1a of the cubin), verified on read.
//
// A bundle pins its kernels: a lookup matches spec, arch, template hash and generator version,
// not the NVRTC version or options (the cubins were built once, by the exporter's NVRTC, and a
// deployment may have no NVRTC at all). Its winners match the GPU (name, arch, SM count), the
// template hash and the bucket: they were measured with the NVRTC that built the bundled cubins.
//
// How it fails: read() throws InvalidArgument naming the bundle path and what is wrong (not a
// bundle, unknown version, a missing or truncated cubin, a checksum mismatch); write() throws
// std::filesystem::filesystem_error or InvalidArgument when the destination cannot be written.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cache/cubin_store.hpp"
#include "cache/tuning_store.hpp"

namespace sagejit {

enum class BundleFormat { directory, file };

constexpr int kBundleVersion = 1;

class Bundle {
 public:
  // Adds a kernel (replacing one with the same key digest) or a winner (replacing one for the same
  // environment and bucket). Created-at times and run ids are dropped: they are not content.
  void add(const CubinRecord& record);
  void add(const TuningWinner& winner);

  const std::vector<CubinRecord>& kernels() const { return kernels_; }  // by digest
  const std::vector<TuningWinner>& winners() const { return winners_; }  // by environment, bucket

  const CubinRecord* find(const std::string& spec, const std::string& arch, const std::string& template_hash,
                          const std::string& generator_version) const;
  std::optional<TuningWinner> winner(const TuningEnv& env, const std::string& bucket) const;

  // The manifest JSON for `format` (what write() puts in the bundle).
  std::string manifest(BundleFormat format) const;
  void write(const std::filesystem::path& path, BundleFormat format) const;
  // A directory or a single file, told apart by what is at `path`.
  static Bundle read(const std::filesystem::path& path);

 private:
  std::vector<CubinRecord> kernels_;
  std::vector<TuningWinner> winners_;
};

struct ImportSummary {
  int kernels = 0;        // cubins put into the store
  int winners_added = 0;  // tuned choices stored
  int winners_kept = 0;   // tuned choices not stored: the slot already had a winner (first writer wins)
};

// Puts every kernel of `b` into `cubins` and every winner into `tuning` (`sagejit import`). Cache
// failures degrade as the stores do; nothing here throws for them.
ImportSummary import_bundle(const Bundle& b, CubinStore& cubins, TuningStore& tuning);

}  // namespace sagejit
