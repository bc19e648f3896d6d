// quant_reference.hpp — host (CPU) reference of the quantization kernels (templates/quant_*.cuh).
//
// The same arithmetic in the same order as the kernels, in float32 with round to nearest even and
// no FMA, so the GPU tests compare bytes and scales for equality, not with a tolerance. The orders
// that matter (the sums behind k_mean and q_mean) are fixed by constants in
// templates/quant_params.cuh, which both sides include; layouts come from templates/quant_layout.cuh.
// Inputs are host buffers of fp16/bf16 bit patterns with [B, H, S, D] strides in elements (channel
// contiguous); outputs are in the contract's layouts. Precondition violations (a head_dim not a
// multiple of 32, a block not a multiple of 16, ...) throw std::invalid_argument.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "templates/quant_layout.cuh"
#include "templates/quant_params.cuh"

namespace sagejit::reference {

// ---- scalar conversions, bit-exact (round to nearest even) ----
float f16_to_float(std::uint16_t h);
std::uint16_t float_to_f16(float f);
float bf16_to_float(std::uint16_t h);
std::uint16_t float_to_bf16(float f);
// e4m3 "fn": no infinities, 0x7f / 0xff are NaN. Encoding rounds to nearest even and saturates
// finite and infinite inputs to +-448 (PTX cvt.rn.satfinite.e4m3x2.f32).
std::uint8_t float_to_e4m3(float f);
float e4m3_to_float(std::uint8_t b);
// rint(y) clamped to [-limit, limit]; NaN gives 0 (as cvt.rni.s32.f32 does).
int round_clamp(float y, int limit);

enum class DType { f16, bf16 };

// A [B, H, S, D] host tensor of 16-bit patterns.
struct HostTensor {
  const std::uint16_t* data = nullptr;
  DType dtype = DType::f16;
  int batch = 0, heads = 0, seq_len = 0, head_dim = 0;
  std::int64_t stride_b = 0, stride_h = 0, stride_s = 0;  // elements; channel stride is 1

  float at(int b, int h, int s, int c) const;
};

// Balanced-tree sum of `n_valid` rows of one channel in the kernels' order (quant_params.cuh):
// leaf[slot] sequential over the rows slot, slot + 64, ... (< tile_rows, < n_valid), then a pairwise
// tree over the 64 leaves. `value(r)` gives row r's value.
template <typename F>
float slot_tree_sum(int tile_rows, int n_valid, F&& value);

// Varlen: the kernels treat each sequence of a packed batch exactly as a batch of one at its own
// length, written into batch slot b of the padded outputs (quant_layout.cuh, "Varlen"). So the
// reference of a varlen call is the functions below applied to each sequence's view, compared over
// the regions quant_layout.cuh defines. `packed` has batch 1; the view is tokens [begin, begin + len)
// as a batch-1 tensor of len tokens.
HostTensor sequence_of(const HostTensor& packed, int begin, int len);

// k_mean [B, H, D]: per channel, the mean over the seq_len tokens (chunked order of quant_stats);
// 0 for a tensor of no tokens (what quant_stats writes for an empty sequence).
std::vector<float> k_mean(const HostTensor& k);
// v_scale [B, H, D] = max(max |v| / 448, kMinScale); kMinScale for no tokens.
std::vector<float> v_scale(const HostTensor& v);

struct QuantQKOptions {
  int bits = 8;                // 8 or 4
  bool is_query = true;
  bool smooth = false;
  layout::Granularity granularity = layout::Granularity::per_thread;
  int block_tokens = 128;      // block_q / block_k
  int warp_tokens = 16;        // warp_q / warp_k
  float scale_multiplier = 1.0f;  // Q: sm_scale * log2(e); K: 1
  int terms = 1;               // 2: two-term int8 (bits 8; quant_layout.cuh), rows of 2·D bytes
};

struct QuantizedQK {
  int seq_len_pad = 0;
  int groups = 0;                     // scale groups per block
  std::vector<std::uint8_t> values;   // int8 [B, H, S_pad, D], packed int4 [B, H, S_pad, D/2] or
                                      // two-term int8 [B, H, S_pad, 2·D]
  std::vector<float> scales;          // [B, H, S_pad / block_tokens, groups]
  std::vector<float> q_mean;          // [B, H, S_pad / block_tokens, D] (Q with smoothing only)
};

// Quantize Q or K. For K with smoothing, `k_mean` ([B, H, D], from k_mean()) is subtracted.
QuantizedQK quantize_qk(const HostTensor& x, const QuantQKOptions& options,
                        std::span<const float> k_mean = {});

// lse_correction [B, Hq, Sq] (natural log) = sm_scale · (q row · k_mean of its kv head), from the
// unsmoothed q, in the Q kernel's order (quant_params.cuh). `k_mean` is [B, heads_kv, D] (from
// k_mean()); heads_kv divides q.heads, and q head h reads kv head h / (q.heads / heads_kv).
std::vector<float> lse_correction(const HostTensor& q, std::span<const float> k_mean, int heads_kv,
                                  float sm_scale);

// V -> e4m3 [B, H, D, seq_len_pad], token-permuted within each 16-token group
// (layout::v_token_at), zero beyond seq_len. `v_scale` is [B, H, D] (from v_scale()).
std::vector<std::uint8_t> quantize_v(const HostTensor& v, std::span<const float> v_scale,
                                     int seq_len_pad);

// ---- implementation of the template ----
template <typename F>
float slot_tree_sum(int tile_rows, int n_valid, F&& value) {
  constexpr int kSlots = kernels::kQuantRowSlots;
  float leaf[kSlots];
  for (int s = 0; s < kSlots; ++s) {
    float acc = 0.0f;
    for (int r = s; r < tile_rows && r < n_valid; r += kSlots) acc = acc + value(r);
    leaf[s] = acc;
  }
  // Within a warp the slots 8w..8w+7 meet by butterfly, then the 8 warps by a pairwise tree:
  // together, this balanced tree over the 64 slots in order.
  for (int width = 1; width < kSlots; width *= 2) {
    for (int i = 0; i < kSlots; i += 2 * width) leaf[i] = leaf[i] + leaf[i + width];
  }
  return leaf[0];
}

}  // namespace sagejit::reference
