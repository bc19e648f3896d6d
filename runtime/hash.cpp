// hash.cpp — hex rendering of hashes.
#include "runtime/hash.hpp"

#include <fmt/format.h>

namespace sagejit {

std::string hex64(std::uint64_t h) { return fmt::format("{:016x}", h); }

}  // namespace sagejit
