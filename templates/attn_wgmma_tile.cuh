// attn_wgmma_tile.cuh — the work unit of the sm_90a attention kernels (attn_wgmma.cuh,
// attn_wgmma_single.cuh): which (batch, head, query rows) a tile index names, the lengths of its
// sequence (varlen) and how many K/V blocks it visits (causal masks stop at the diagonal).
#pragma once

#include "attn_params.cuh"

namespace sagejit::kernels {

// The work unit: one CTA tile of cta_q query rows of one (batch, q head). Tiles are numbered with
// the q tile fastest, so CTAs that run at the same time share a (batch, head)'s K and V in L2; with
// a causal mask the q tiles run last-first (the longest rows first).
// With varlen (p.cu_seqlens_q/k non-null) the lengths are the tile's sequence's, the slots cover
// the longest, and a tile past its sequence's end is empty (both roles skip it, touching no barrier).
// Causal: slots pair tiles of equal total work (attn_wgmma_q_slots): slot 2i is the sequence's i-th
// longest tile, slot 2i + 1 its i-th shortest.
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

template <int CtaQ, int CtaK, int Mask>
__device__ __forceinline__ AttnWgmmaTile attn_wgmma_tile(const AttnParams& p, int tile, int q_slots) {
  AttnWgmmaTile w;
  const int qi = tile % q_slots, bh = tile / q_slots;
  w.h = bh % p.heads_q;
  w.b = bh / p.heads_q;
  w.seq_q = p.seq_q, w.seq_kv = p.seq_kv, w.q_tok0 = 0, w.k_tok0 = 0;
  if (p.cu_seqlens_q != nullptr) {
    w.q_tok0 = p.cu_seqlens_q[w.b];
    w.seq_q = p.cu_seqlens_q[w.b + 1] - w.q_tok0;
    w.k_tok0 = p.cu_seqlens_k[w.b];
    w.seq_kv = p.cu_seqlens_k[w.b + 1] - w.k_tok0;
  }
  // Causal tiles differ in work: pairs of the longest and shortest (see above) over the sequence's
  // own tiles; a slot without a tile gets q0 = seq_q (empty).
  w.qt = qi;
  if constexpr (Mask != 0) {
    const int own_tiles = (w.seq_q + CtaQ - 1) / CtaQ;
    const int pair = qi / 2, last = own_tiles - 1 - pair;
    const bool valid = qi % 2 == 0 ? pair <= last : pair < last;
    w.qt = !valid ? own_tiles : qi % 2 == 0 ? last : pair;
  }
  w.q0 = w.qt * CtaQ;
  if (w.q0 > w.seq_q) w.q0 = w.seq_q;
  w.kv_blocks = (w.seq_kv + CtaK - 1) / CtaK;
  if constexpr (Mask != 0) {
    const int diag = Mask == 2 ? w.seq_kv - w.seq_q : 0;
    const int last_row = (w.q0 + CtaQ < w.seq_q ? w.q0 + CtaQ : w.seq_q) - 1;
    const int last_key = last_row + diag;
    const int causal_blocks = last_key < 0 ? 0 : last_key / CtaK + 1;
    w.kv_blocks = causal_blocks < w.kv_blocks ? causal_blocks : w.kv_blocks;
  }
  return w;
}

}  // namespace sagejit::kernels
