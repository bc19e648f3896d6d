// attn_wgmma_tile.cuh — the work unit of the sm_90a attention kernels (attn_wgmma.cuh,
// attn_wgmma_single.cuh): which (batch, head, query rows) a tile index names, the lengths of its
// sequence (varlen) and how many K/V blocks it visits (causal masks stop at the diagonal).
#pragma once

#include "attn_params.cuh"

namespace sagejit::kernels {

// The work unit: one CTA tile of cta_q query rows of one (batch, q head). Tiles are numbered so that
// CTAs that run at the same time share a few (batch, head)s' K and V in L2 (the orders below).
// With varlen (p.cu_seqlens_q/k non-null) the lengths are the tile's sequence's, the slots cover
// the longest, and a tile past its sequence's end is empty (both roles skip it, touching no barrier).
struct AttnWgmmaTile {
  int b, h, qt, q0;
  int seq_q, seq_kv;  // this tile's sequence's lengths
  int q_tok0;         // varlen: the sequence's first row in the packed output / LSE (else 0)
  int k_tok0;         // varlen: the sequence's first key in the packed K/V (else 0)
  int kv_blocks;      // K/V blocks of cta_k keys this tile visits (causal: up to its last row's diagonal)
  __device__ bool empty() const { return q0 >= seq_q; }
  // The (batch, head) rows of the quantized Q and of K/V; `group` query heads share a K/V head.
  __device__ long long bh_q(const AttnParams& p) const { return static_cast<long long>(b) * p.heads_q + h; }
  __device__ long long bh_kv(const AttnParams& p, int group) const {
    return static_cast<long long>(b) * p.heads_kv + h / group;
  }
  // The element offset of row 0 of this tile's (batch, q head) in a caller's query-side tensor (Q,
  // out) of these element strides: batch slot b, or with varlen the packed sequence's first token
  // (stride_b unused).
  __device__ long long q_rows_at(const AttnParams& p, long long stride_b, long long stride_h, long long stride_s) const {
    return (p.cu_seqlens_q != nullptr ? q_tok0 * stride_s : b * stride_b) + h * stride_h;
  }
};

// How a slot index within a (batch, q head) names its tile: the tile of that index; with a causal
// mask, pairs of the longest and shortest (attn_wgmma_q_slots: slot 2i the sequence's i-th longest
// tile, 2i + 1 its i-th shortest), or by work rank (slot i the i-th longest).
enum class AttnTileOrder { index, pairs, rank };

// Tile qt of w's sequence (w's batch, head and lengths kept): its rows and K/V blocks. Past the
// sequence's end, q0 = seq_q (empty).
template <int CtaQ, int CtaK, int Mask>
__device__ __forceinline__ void attn_wgmma_tile_place(AttnWgmmaTile& w, int qt) {
  w.qt = qt;
  w.q0 = qt * CtaQ;
  if (w.q0 > w.seq_q) w.q0 = w.seq_q;
  w.kv_blocks = (w.seq_kv + CtaK - 1) / CtaK;
  if constexpr (Mask != 0) {
    const int diag = Mask == 2 ? w.seq_kv - w.seq_q : 0;
    const int last_row = (w.q0 + CtaQ < w.seq_q ? w.q0 + CtaQ : w.seq_q) - 1;
    const int last_key = last_row + diag;
    const int causal_blocks = last_key < 0 ? 0 : last_key / CtaK + 1;
    w.kv_blocks = causal_blocks < w.kv_blocks ? causal_blocks : w.kv_blocks;
  }
}

// Slot qi of (batch, q head) bh: its sequence's lengths and offsets, tile, rows and K/V blocks. A slot
// without a tile gets q0 = seq_q (empty).
template <int CtaQ, int CtaK, int Mask>
__device__ __forceinline__ AttnWgmmaTile attn_wgmma_tile_at(const AttnParams& p, int bh, int qi, AttnTileOrder order) {
  AttnWgmmaTile w;
  w.h = bh % p.heads_q;
  w.b = bh / p.heads_q;
  w.seq_q = p.seq_q, w.seq_kv = p.seq_kv, w.q_tok0 = 0, w.k_tok0 = 0;
  if (p.cu_seqlens_q != nullptr) {
    w.q_tok0 = p.cu_seqlens_q[w.b];
    w.seq_q = p.cu_seqlens_q[w.b + 1] - w.q_tok0;
    w.k_tok0 = p.cu_seqlens_k[w.b];
    w.seq_kv = p.cu_seqlens_k[w.b + 1] - w.k_tok0;
  }
  // (A causal tile's work never decreases with its index, at both alignments.)
  const int own_tiles = (w.seq_q + CtaQ - 1) / CtaQ;
  w.qt = qi;
  if (Mask != 0 && order == AttnTileOrder::pairs) {
    const int pair = qi / 2, last = own_tiles - 1 - pair;
    const bool valid = qi % 2 == 0 ? pair <= last : pair < last;
    w.qt = !valid ? own_tiles : qi % 2 == 0 ? last : pair;
  } else if (Mask != 0 && order == AttnTileOrder::rank) {
    w.qt = qi < own_tiles ? own_tiles - 1 - qi : own_tiles;
  }
  attn_wgmma_tile_place<CtaQ, CtaK, Mask>(w, w.qt);
  return w;
}

// Tile `tile` of q_slots per (batch, q head), (b, h)-major, causal slots in pairs (the warp-specialized
// kernel's persistent schedule takes them two at a time).
template <int CtaQ, int CtaK, int Mask>
__device__ __forceinline__ AttnWgmmaTile attn_wgmma_tile(const AttnParams& p, int tile, int q_slots) {
  return attn_wgmma_tile_at<CtaQ, CtaK, Mask>(p, tile / q_slots, tile % q_slots, AttnTileOrder::pairs);
}

// The CTAs of a non-persistent launch, tile `tile` of q_slots per (batch, q head), in the order the
// GPU starts them. Without a mask, (b, h)-major. With one, longest first (LPT): the (b, h) go in
// groups of p.lpt_heads (the host's choice: few enough that their quantized K and V stay in L2),
// and within a group by work rank, then (b, h), so a group's longest tiles start first and the grid
// ends on one-block tiles. (b, h)-major order leaves a last head's longest tiles to the end.
template <int CtaQ, int CtaK, int Mask>
__device__ __forceinline__ AttnWgmmaTile attn_wgmma_tile_lpt(const AttnParams& p, int tile, int q_slots) {
  if constexpr (Mask == 0) {
    return attn_wgmma_tile_at<CtaQ, CtaK, Mask>(p, tile / q_slots, tile % q_slots, AttnTileOrder::index);
  } else {
    const int bh_count = p.batch * p.heads_q;
    const int group_heads = p.lpt_heads > 0 && p.lpt_heads < bh_count ? p.lpt_heads : bh_count;
    const int group = tile / (q_slots * group_heads), within = tile - group * q_slots * group_heads;
    const int heads_here = bh_count - group * group_heads < group_heads ? bh_count - group * group_heads : group_heads;
    return attn_wgmma_tile_at<CtaQ, CtaK, Mask>(p, group * group_heads + within % heads_here, within / heads_here,
                                                AttnTileOrder::rank);
  }
}

}  // namespace sagejit::kernels
