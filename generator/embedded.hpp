// embedded.hpp — the kernel templates compiled into the binary (see cmake/embed_templates.cmake).
//
// NVRTC receives these as headers by name, so a kernel never depends on files next to the binary.
// Their combined hash enters every cubin cache key: editing a template is a cache miss, never a
// stale hit.
#pragma once

#include <span>
#include <string_view>

namespace sagejit {

struct EmbeddedFile {
  std::string_view name;      // e.g. "quant_qk.cuh"
  std::string_view contents;
};

std::span<const EmbeddedFile> embedded_templates();
// First 16 hex digits of the SHA-256 of every template's name and contents.
std::string_view embedded_templates_hash();

}  // namespace sagejit
