// varlen.hpp — a variable-length packed batch: B sequences of different lengths stored back to back
// in one tensor, located by cumulative sequence offsets (flash-attn's varlen convention).
//
// The packed tensors themselves are ordinary TensorRef views with batch 1 and seq = the total token
// count: q [1, Hq, total_q, D], k and v [1, Hkv, total_kv, D] (any layout whose channel dimension is
// contiguous; a contiguous torch [total, H, D] tensor has head stride D, sequence stride H·D, and
// its batch stride is never used). Sequence b owns
// tokens [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of q and out, [cu_seqlens_k[b], cu_seqlens_k[b + 1])
// of k and v. The offsets are given twice, with the same values: a host copy, which sagejit
// validates and plans from without synchronizing the device, and a device copy, which the kernels
// read. `validate_varlen` says which rule is broken, naming the argument ("cu_seqlens_q",
// "max_seqlen_k", ...); nothing is launched before it passes.
#pragma once

#include <cstdint>

#include "sagejit/tensor.hpp"

namespace sagejit {

// Offsets are [batch + 1] int32 prefix sums of the sequence lengths, starting at 0, each given twice
// with the same values (the C ABI's sagejit_varlen has the same fields).
struct VarlenBatch {
  std::int64_t batch = 0;  // B, the number of sequences
  // Host memory, read during the call only.
  const std::int32_t* cu_seqlens_q = nullptr;
  const std::int32_t* cu_seqlens_k = nullptr;
  // Device memory, 4-byte aligned, read by the kernels: must hold the same values until they have run.
  const std::int32_t* cu_seqlens_q_device = nullptr;
  const std::int32_t* cu_seqlens_k_device = nullptr;
  // At least the longest query / key sequence. The quantized workspace and the grid are sized for
  // them, so passing the true maxima costs least; larger values are allowed (as in flash-attn).
  std::int64_t max_seqlen_q = 0, max_seqlen_k = 0;
};

// The rules, in order, each naming its argument:
//   q, k, v valid views (validate_tensor), each with batch 1 (packed);
//   0 <= batch <= 65535 (the kernels launch one grid z slice per sequence);
//   cu_seqlens_{q,k} (host) non-null; cu_seqlens_{q,k}_device non-null and 4-byte aligned when
//   batch > 0; cu[0] == 0, cu[b] <= cu[b + 1], cu[batch] == q.seq (resp. k.seq);
//   0 <= max_seqlen_{q,k} < 2^30, and every length <= max_seqlen.
// Zero-length sequences are allowed: a query sequence with no keys gets output 0 and LSE −inf, a
// sequence with no queries writes nothing.
void validate_varlen(const VarlenBatch& varlen, const TensorRef& q, const TensorRef& k, const TensorRef& v);

}  // namespace sagejit
