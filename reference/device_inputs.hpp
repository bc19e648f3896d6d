// device_inputs.hpp — device copies of a check's inputs, shared by attention_check.cpp and
// quant_check.cpp: the fp16/bf16 bits of q, k and v (padded or packed), and for varlen checks the
// sequence offsets with the VarlenBatch that points at both copies.
// How it fails: a driver error (CudaError) from an allocation or a copy.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/device_buffer.hpp"
#include "sagejit/varlen.hpp"

namespace sagejit {

// Uploads q, k and v (each an input with host `bits` and a `view`) and points their views at the
// copies, which live as long as this object.
struct DeviceQKV {
  DeviceBuffer q, k, v;
  template <class Input>
  DeviceQKV(Input& qi, Input& ki, Input& vi)
      : q(qi.bits.size() * sizeof(qi.bits[0])), k(ki.bits.size() * sizeof(ki.bits[0])),
        v(vi.bits.size() * sizeof(vi.bits[0])) {
    q.upload(qi.bits), k.upload(ki.bits), v.upload(vi.bits);
    qi.view.data = q.get(), ki.view.data = k.get(), vi.view.data = v.get();
  }
};

// flash-attn's cu_seqlens of `lengths`: B + 1 prefix sums starting at 0.
inline std::vector<int> offsets_of(const std::vector<int>& lengths) {
  std::vector<int> cu(lengths.size() + 1, 0);
  for (std::size_t b = 0; b < lengths.size(); ++b) cu[b + 1] = cu[b] + lengths[b];
  return cu;
}

// Device copies of the host offsets and the VarlenBatch over both (the host vectors must outlive it).
struct DeviceOffsets {
  DeviceBuffer cu_q, cu_k;
  VarlenBatch batch;
  DeviceOffsets(const std::vector<int>& cu_q_host, const std::vector<int>& cu_k_host, int max_q, int max_k)
      : cu_q(cu_q_host.size() * 4), cu_k(cu_k_host.size() * 4) {
    cu_q.upload(cu_q_host), cu_k.upload(cu_k_host);
    batch.batch = static_cast<std::int64_t>(cu_q_host.size()) - 1;
    batch.cu_seqlens_q = cu_q_host.data(), batch.cu_seqlens_k = cu_k_host.data();
    batch.cu_seqlens_q_device = static_cast<const std::int32_t*>(cu_q.get());
    batch.cu_seqlens_k_device = static_cast<const std::int32_t*>(cu_k.get());
    batch.max_seqlen_q = max_q, batch.max_seqlen_k = max_k;
  }
};

}  // namespace sagejit
