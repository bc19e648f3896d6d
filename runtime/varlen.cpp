// varlen.cpp — the rules a variable-length packed batch must satisfy (include/sagejit/varlen.hpp).
//
// Host-only: reads the host copy of the offsets, never the device, so a bad batch is refused before
// any driver call (and the rules are testable on a machine without a GPU). Throws InvalidArgument
// naming the argument, the rule and the values that broke it.
#include "sagejit/varlen.hpp"

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "runtime/error.hpp"

namespace sagejit {
namespace {

// Lengths are int32 in the kernels, and a padded length (rounded up to a 128-row block) must fit too.
constexpr std::int64_t kMaxLength = std::int64_t{1} << 30;
constexpr std::int64_t kMaxBatch = 65535;

// Names are views of literals: a valid batch (the hot path) formats and allocates nothing.
void check_offsets(const std::int32_t* cu, const std::int32_t* device, std::int64_t batch, std::int64_t total,
                   std::int64_t max_len, std::string_view name, std::string_view max_name, const char* tensor) {
  if (cu == nullptr) {
    throw InvalidArgument(std::string(name),
                          "is null (the host copy of the offsets is required: sagejit validates and plans from it "
                          "without a device synchronization)");
  }
  if (batch > 0) {
    if (device == nullptr) {
      throw InvalidArgument(fmt::format("{}_device", name), "is null (the kernels read the device copy)");
    }
    if (reinterpret_cast<std::uintptr_t>(device) % alignof(std::int32_t) != 0) {
      throw InvalidArgument(fmt::format("{}_device", name),
                            fmt::format("must be 4-byte aligned (got {})", static_cast<const void*>(device)));
    }
  }
  if (max_len < 0 || max_len >= kMaxLength) {
    throw InvalidArgument(std::string(max_name), fmt::format("must be in [0, 2^30) (got {})", max_len));
  }
  if (cu[0] != 0) {
    throw InvalidArgument(std::string(name), fmt::format("must start at 0 (got {}[0] = {})", name, cu[0]));
  }
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t len = std::int64_t{cu[b + 1]} - cu[b];
    if (len < 0) {
      throw InvalidArgument(std::string(name),
                            fmt::format("must be non-decreasing (got {0}[{1}] = {2} > {0}[{3}] = {4})", name, b, cu[b],
                                        b + 1, cu[b + 1]));
    }
    if (len > max_len) {
      throw InvalidArgument(std::string(max_name),
                            fmt::format("must be at least every sequence's length (sequence {} has {} tokens, "
                                        "{} is {})",
                                        b, len, max_name, max_len));
    }
  }
  if (cu[batch] != total) {
    throw InvalidArgument(std::string(name), fmt::format("must end at {}'s token count {} ({}[{}] = {})", tensor, total,
                                                         name, batch, cu[batch]));
  }
}

}  // namespace

void validate_varlen(const VarlenBatch& varlen, const TensorRef& q, const TensorRef& k, const TensorRef& v) {
  validate_tensor(q, "q");
  validate_tensor(k, "k");
  validate_tensor(v, "v");
  for (auto [t, what] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
    if (t->batch != 1) {
      throw InvalidArgument(what,
                            fmt::format("a packed varlen tensor holds every sequence's tokens in one batch: batch "
                                        "must be 1, seq the total token count (got batch {})",
                                        t->batch));
    }
  }
  // One grid z slice per sequence: CUDA's gridDim.z limit.
  if (varlen.batch < 0 || varlen.batch > kMaxBatch) {
    throw InvalidArgument("varlen.batch", fmt::format("must be in [0, {}], one grid z slice per sequence (got {})",
                                                      kMaxBatch, varlen.batch));
  }
  check_offsets(varlen.cu_seqlens_q, varlen.cu_seqlens_q_device, varlen.batch, q.seq, varlen.max_seqlen_q,
                "cu_seqlens_q", "max_seqlen_q", "q");
  check_offsets(varlen.cu_seqlens_k, varlen.cu_seqlens_k_device, varlen.batch, k.seq, varlen.max_seqlen_k,
                "cu_seqlens_k", "max_seqlen_k", "k");
}

}  // namespace sagejit
