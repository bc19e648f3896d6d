// tensor.cpp — tensor views and their validation.
#include "sagejit/tensor.hpp"

#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "runtime/error.hpp"

namespace sagejit {

TensorRef TensorRef::contiguous(const void* data, DType dtype, Layout layout, std::int64_t batch,
                                std::int64_t heads, std::int64_t seq, std::int64_t dim) {
  TensorRef t{data, dtype, batch, heads, seq, dim};
  if (layout == Layout::hnd) {
    t.stride_b = heads * seq * dim, t.stride_h = seq * dim, t.stride_s = dim;
  } else {
    t.stride_b = seq * heads * dim, t.stride_h = dim, t.stride_s = heads * dim;
  }
  return t;
}

void validate_tensor(const TensorRef& t, std::string_view argument) {
  const std::string arg(argument);
  if (t.batch < 0 || t.heads <= 0 || t.seq < 0 || t.dim <= 0) {
    throw InvalidArgument(arg, fmt::format("sizes must be batch >= 0, heads > 0, seq >= 0, dim > 0 (got [{}, {}, {}, {}])",
                                           t.batch, t.heads, t.seq, t.dim));
  }
  if (t.stride_d != 1) {
    throw InvalidArgument(arg, fmt::format("the channel (last) dimension must be contiguous: stride 1 (got {})", t.stride_d));
  }
  for (auto [stride, what] : {std::pair{t.stride_b, "batch"}, {t.stride_h, "head"}, {t.stride_s, "sequence"}}) {
    if (stride < 0 || stride % 8 != 0) {
      throw InvalidArgument(arg, fmt::format("the {} stride must be a non-negative multiple of 8 elements, so every row is "
                                             "16-byte aligned (got {})", what, stride));
    }
  }
  const std::int64_t elements = t.batch * t.heads * t.seq * t.dim;
  if (elements == 0) return;  // nothing will be read: the pointer may be anything
  if (t.data == nullptr) throw InvalidArgument(arg, "the data pointer is null");
  if (reinterpret_cast<std::uintptr_t>(t.data) % 16 != 0) {
    throw InvalidArgument(arg, fmt::format("the data pointer must be 16-byte aligned (got {})", t.data));
  }
  if (t.seq > std::numeric_limits<std::int32_t>::max() / 2) {
    throw InvalidArgument(arg, fmt::format("sequence length {} does not fit the kernels' 32-bit indexing", t.seq));
  }
}

}  // namespace sagejit
