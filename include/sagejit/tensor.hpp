// tensor.hpp — how callers hand sagejit a tensor: a pointer, a dtype and a 4-D [B, H, S, D] view.
//
// The view is logical: HND memory is strides (H·S·D, S·D, D, 1), NHD is (S·H·D, D, H·D, 1), and
// any other strides are accepted as long as the channel dimension is contiguous and rows are
// 16-byte aligned (the kernels read 16 bytes per thread). `validate_tensor` says which rule a view
// breaks, naming the argument.
#pragma once

#include <cstdint>
#include <string_view>

#include "generator/types.hpp"

namespace sagejit {

struct TensorRef {
  const void* data = nullptr;  // device pointer
  DType dtype = DType::f16;
  std::int64_t batch = 0, heads = 0, seq = 0, dim = 0;
  std::int64_t stride_b = 0, stride_h = 0, stride_s = 0, stride_d = 1;  // in elements

  // Contiguous views in either layout.
  static TensorRef contiguous(const void* data, DType dtype, Layout layout, std::int64_t batch,
                              std::int64_t heads, std::int64_t seq, std::int64_t dim);
};

// Throws InvalidArgument naming `argument` (e.g. "q") and the rule: null pointer, 16-byte
// alignment, contiguous channels, strides multiple of 8 elements, positive sizes, 32-bit indexing.
void validate_tensor(const TensorRef& t, std::string_view argument);

}  // namespace sagejit
