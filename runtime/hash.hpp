// hash.hpp — the one stable hash sagejit uses for spec hashes, cache keys and blob checksums.
//
// 64-bit FNV-1a: stable across runs, platforms and compilers (unlike std::hash), cheap, and enough
// to detect corruption and tell keys apart. It is not a defence against a malicious cache file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sagejit {

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

inline std::uint64_t fnv1a64(const void* data, std::size_t size, std::uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

inline std::uint64_t fnv1a64(std::string_view s, std::uint64_t h = kFnvOffset) {
  return fnv1a64(s.data(), s.size(), h);
}

// 16 lowercase hex digits.
std::string hex64(std::uint64_t h);

}  // namespace sagejit
