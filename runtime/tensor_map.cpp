// tensor_map.cpp — cuTensorMapEncodeTiled for 2-D byte tensors.
#include "runtime/tensor_map.hpp"

#include "runtime/driver.hpp"

namespace sagejit {

CUtensorMap tensor_map_u8(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint64_t row_bytes,
                          std::uint32_t box_inner, std::uint32_t box_rows, CUtensorMapSwizzle swizzle) {
  CUtensorMap map{};
  std::uint64_t dims[2] = {inner, rows};
  std::uint64_t strides[1] = {row_bytes};
  std::uint32_t box[2] = {box_inner, box_rows};
  std::uint32_t element_strides[2] = {1, 1};
  SAGEJIT_CU(cuTensorMapEncodeTiled, &map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2u, const_cast<void*>(base), dims, strides,
             box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return map;
}

}  // namespace sagejit
