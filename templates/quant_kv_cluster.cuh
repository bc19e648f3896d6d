// quant_kv_cluster.cuh — quantize_kv for short key sequences (up to kv_cluster_max_chunks(D) chunks of
// 128 tokens: 2k keys): one thread-block cluster per (b, h) and tensor, one
// CTA per chunk, so that K and V are held in registers while the cluster agrees on K's mean and V's
// scale (sm_90a).
//
// What it computes: what quantize_kv (quant_kv.cuh) computes, bit for bit. Each CTA takes its
// chunk's partial sum of K or max|V| with the same steps (detail::chunk_partial, reduce_warps) and
// pushes it into every CTA of its cluster (st.async into distributed shared memory, counted by each
// receiver's mbarrier); every CTA reduces the partials in chunk order from 0, as quantize_kv's last
// statistics item does, and quantizes its chunk's K rows or V tile from the registers it loaded
// (detail::quantize_rows, quantize_v_tile). CTA rank 0 of each cluster writes k_mean or v_scale.
// The pushes need no fence: an exchange by cluster barriers (partials written locally, a releasing
// arrival, remote loads) spent ~5 µs of 45 in the release at B4 H32 D128 S1k on the H100, and this
// form runs 45.0 → 39.5 µs there (D64 H64 47.2 → 42.5, D256 H32 88.5 → 85.3;
// bench/results/2026-11-27-cluster-exchange-h100.md). The one cluster barrier left, right after the
// barriers are initialized, waits under the chunk's loads.
//
// Why: a cluster's CTAs run at once (the hardware co-schedules them), so a chunk can stay in
// registers across the exchange, with no tickets, flags or counters (none to clear before the
// launch). K and V are separate clusters (the first and the second C CTAs along x), each CTA holding
// one tensor's chunk (32 registers of data at D = 128): 4 CTAs per SM, against quantize_kv's 2,
// which is where the time goes — both kernels are latency-bound, and quantize_kv's second read of a
// chunk already comes from L2 (ncu, H100, B4 H32 D128 S1k, at 3 CTAs per SM: 64 against 72 µs,
// occupancy 34% against 24%; bench/results/2026-11-26-kv-cluster-h100.md). Bounded to 64 registers
// for the fourth CTA (D = 96 and 128, no spill): 52.3 → 47.9 µs at that shape
// (bench/results/2026-11-26-levers-h100.md).
//
// Launch contract: grid (C · (WithV ? 2 : 1), heads, batch), cluster (C, 1, 1) with C =
// stats_chunks(seq_len) in 1 .. kv_cluster_max_chunks(HeadDim) (the longest sequence's chunks; seq_len > 0),
// block kQuantThreads; QuantKVParams as for quantize_kv except that next_item, stats_words, lag and the
// statistics' partials and counters are not read. Varlen: as quantize_kv (a sequence's CTAs past its
// last chunk only take part in the cluster barrier; a sequence with no keys gets k_mean 0 and
// v_scale kMinScale).
#pragma once

#include "hopper_ops.cuh"
#include "quant_kv.cuh"

namespace sagejit::kernels {

namespace cluster {

// Every thread of every CTA of the cluster: arrive, then wait for all (acquiring what the others
// released before they arrived). Split, so that work can run between the two. The arrival here is
// relaxed: what it must publish, the mbarrier initialization, is released by fence_barrier_init.
__device__ __forceinline__ void arrive_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
__device__ __forceinline__ void wait() { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }
// Stores v at `local` (a __shared__ variable) in the shared memory of the cluster's CTA `cta`, its 4
// bytes counted as a transaction of that CTA's mbarrier `bar_local` (st.async: no fence, the
// receiver's mbarrier wait makes it visible).
__device__ __forceinline__ void push_f32(const float* local, const unsigned long long* bar_local, unsigned int cta,
                                         float v) {
  const unsigned int addr = static_cast<unsigned int>(__cvta_generic_to_shared(local));
  const unsigned int bar = static_cast<unsigned int>(__cvta_generic_to_shared(bar_local));
  unsigned int remote, remote_bar;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(addr), "r"(cta));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote_bar) : "r"(bar), "r"(cta));
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.f32 [%0], %1, [%2];" ::"r"(remote), "f"(v),
               "r"(remote_bar)
               : "memory");
}

}  // namespace cluster

// The register bound follows one tensor's chunk: 16 registers of data (D = 64), 5 CTAs per SM (48
// registers); up to 32 (D = 96, 128), 4 (64); 64 at D = 256, 2 (128). (H100, 2026-11-26, B4 S1k:
// D = 64 56.2 -> 52.3 us at 5 against 4, D = 128 52.3 -> 47.9 us at 4 against 3; 6 CTAs spill at
// D = 64.) D = 96 (24 registers of data) fits 5 too with one-term K smoothed, the default (12 to 32
// bytes of spill without smoothing or with two terms): H100, B4 H32, end to end, same call, three
// rounds, 0.1240 / 0.1219 / 0.1220 -> 0.1205 / 0.1209 / 0.1206 ms at 1k, causal 0.0973 / 0.0963 /
// 0.0974 -> 0.0942 / 0.0940 / 0.0954; 2k within the spread.
template <int HeadDim, int Terms, bool Smooth>
constexpr int kv_cluster_min_ctas() {
  constexpr int data = kv_data_registers<HeadDim, false>();
  return data <= 16 || (data <= 24 && Terms == 1 && Smooth) ? 5 : data <= 32 ? 4 : 2;
}

template <typename In, int HeadDim, int Bits, int Terms, bool Smooth, bool WithV>
__global__ void __launch_bounds__(kQuantThreads, kv_cluster_min_ctas<HeadDim, Terms, Smooth>())
    quantize_kv_cluster(QuantKVParams p) {
  static_assert(HeadDim % 32 == 0 && HeadDim <= kQuantThreads, "HeadDim: multiple of 32, <= 256");
  static_assert(Smooth || WithV, "without K smoothing or FP8 V there is nothing to compute first");
  static_assert(kStatsChunkTokens == kVTileTokens, "one chunk is one V tile");
  constexpr int kChunks = HeadDim / 32;
  constexpr int kPasses = kStatsChunkTokens / kQuantRowSlots;
  constexpr int kMaxGroups = kStatsChunkTokens / 16 * 4;  // as quantize_kv
  // The warps' partials, then every chunk's partial (pushed there by the chunk's CTA: s_bar completes
  // when all have landed), share their bytes with the V tile, which is written only after both are
  // read (the barrier after the statistics below). The pushes land after the warps' partials, never
  // on them: another CTA may push while this one still reduces its own. (At D = 256 with V, the
  // partials of 16 chunks apart from the tile would take the static shared memory past 48 KiB.)
  constexpr int kPartialBytes = kQuantWarps * HeadDim * 4;
  constexpr int kAllBytes = kv_cluster_max_chunks(HeadDim) * HeadDim * 4;
  constexpr int kTileBytes = WithV ? HeadDim * kVTileTokens : 0;
  constexpr int kRawBytes = kPartialBytes + kAllBytes > kTileBytes ? kPartialBytes + kAllBytes : kTileBytes;
  __shared__ alignas(16) unsigned char s_raw[kRawBytes];
  auto s_tile = reinterpret_cast<unsigned char (*)[kVTileTokens]>(s_raw);
  auto s_part = reinterpret_cast<float (*)[HeadDim]>(s_raw);
  auto s_all = reinterpret_cast<float (*)[HeadDim]>(s_raw + kPartialBytes);
  __shared__ alignas(8) unsigned long long s_bar;
  __shared__ alignas(16) float s_stat[HeadDim];  // K: the mean; V: 1 / scale
  __shared__ int s_group_max[kMaxGroups];
  __shared__ float s_group_inv[kMaxGroups];

  const int tid = threadIdx.x;
  // The attention kernel after this one (a programmatic launch) may start during this grid's last
  // CTAs; it waits for its completion (griddep_wait) before it reads K or V.
  if (p.release_dependents != 0) griddep_launch_dependents();
  // blockIdx.x: the tensor's cluster (0 K, 1 V with WithV) times C, plus the chunk, which is then the
  // CTA's rank in its cluster. A K cluster without smoothing has no statistic to agree on.
  const int grid_chunks = static_cast<int>(gridDim.x) / (WithV ? 2 : 1);
  const bool is_k = static_cast<int>(blockIdx.x) < grid_chunks;
  const bool has_stat = is_k ? Smooth : WithV;
  const int chunk = static_cast<int>(blockIdx.x) % grid_chunks;
  const int head = static_cast<int>(blockIdx.y);
  const int batch = static_cast<int>(blockIdx.z);
  const long long bh = static_cast<long long>(batch) * p.k.heads + head;
  const Sequence sequence = sequence_of(p.k.cu_seqlens, batch, p.k.seq_len);
  const int seq_len = sequence.len;
  // Clamped to the cluster: a device-side length beyond max_seqlen (which the host cannot check).
  const int n_chunks = stats_chunks(seq_len) < grid_chunks ? stats_chunks(seq_len) : grid_chunks;
  const bool has_chunk = chunk < n_chunks;  // uniform over the CTA
  const int tok0 = chunk * kStatsChunkTokens;
  const int n_valid = has_chunk ? (seq_len - tok0 < kStatsChunkTokens ? seq_len - tok0 : kStatsChunkTokens) : 0;
  // The partials' exchange, where there is a statistic, a key and more than one CTA (a launch of one
  // chunk has no cluster; all uniform over the cluster): each CTA with a chunk arms its barrier for
  // all n_chunks partials, and the cluster barrier (its wait below, after the loads) makes every
  // barrier initialized before any partial is pushed.
  const bool exchange = has_stat && n_chunks > 0 && grid_chunks > 1;
  const unsigned int bar = static_cast<unsigned int>(__cvta_generic_to_shared(&s_bar));
  if (exchange) {
    if (has_chunk && tid == 0) {
      hopper::mbarrier_init(bar, 1);
      hopper::mbarrier_arrive_expect_tx(bar, static_cast<unsigned int>(n_chunks * HeadDim * 4));
      hopper::fence_barrier_init();
    }
    cluster::arrive_relaxed();
  }

  // Every load of the chunk in flight before the first use.
  const int slot = (tid >> 5) * 8 + ((tid & 31) >> 2);
  u32x4 data[kPasses][kChunks];
  {
    const In* in = is_k ? detail::kv_chunk_rows<In>(p.k.in, sequence, p.k.stride_b, p.k.stride_h, p.k.stride_s, head, tok0)
                        : detail::kv_chunk_rows<In>(p.v.in, sequence, p.v.stride_b, p.v.stride_h, p.v.stride_s, head, tok0);
    load_tile_rows<kPasses, kChunks, kQuantRowSlots>(in, is_k ? p.k.stride_s : p.v.stride_s, n_valid, slot, tid & 3,
                                                     data);
  }

  // The chunk's partial, as a statistics item of quantize_kv computes it.
  if (has_chunk && has_stat) {
    if (is_k) {
      detail::chunk_partial<In, HeadDim, true>(data, n_valid, s_part);
    } else {
      detail::chunk_partial<In, HeadDim, false>(data, n_valid, s_part);
    }
  }
  __syncthreads();
  float part = 0.0f;
  if (has_chunk && has_stat && tid < HeadDim) {
    part = is_k ? detail::reduce_warps<HeadDim, true>(s_part, tid) : detail::reduce_warps<HeadDim, false>(s_part, tid);
  }
  if (exchange) {
    cluster::wait();
    if (has_chunk && tid < HeadDim) {
      for (int c = 0; c < n_chunks; ++c) {
        cluster::push_f32(&s_all[chunk][tid], &s_bar, static_cast<unsigned int>(c), part);
      }
    }
  }
  // The (b, h)'s statistic from every chunk's partial, in chunk order from 0 as reduce_chunks takes
  // them; where there are no keys, quant_stats' defined statistics (k_mean 0, v_scale kMinScale),
  // written by chunk 0's CTA.
  if (has_stat && tid < HeadDim && (has_chunk || chunk == 0)) {
    float r = 0.0f;
    if (has_chunk && exchange) {
      hopper::mbarrier_wait_parity</*Cluster=*/true>(bar, 0);
      for (int c = 0; c < n_chunks; ++c) r = is_k ? add_rn(r, s_all[c][tid]) : max_f(r, s_all[c][tid]);
    } else if (has_chunk) {
      r = is_k ? add_rn(r, part) : max_f(r, part);  // the only chunk
    }
    if (is_k) {
      const float mean = n_chunks > 0 ? detail::k_mean_of(r, seq_len) : 0.0f;
      s_stat[tid] = mean;
      if (chunk == 0) p.stats.k_mean[bh * HeadDim + tid] = mean;
    } else {
      const float scale = n_chunks > 0 ? detail::v_scale_of(r) : layout::kMinScale;
      s_stat[tid] = detail::v_inv_of(scale);
      if (chunk == 0) p.stats.v_scale[bh * HeadDim + tid] = scale;
    }
  }
  if (tid < kMaxGroups) s_group_max[tid] = 0;
  __syncthreads();

  if (has_chunk) {
    if (is_k) {
      detail::quantize_rows<In, HeadDim, Bits, Terms, false, Smooth, false, true>(
          data, detail::kv_chunk_k_tile<HeadDim, Bits, Terms>(p.k, bh, tok0, n_valid, seq_len), s_stat, s_group_max,
          s_group_inv);
    } else if constexpr (WithV) {
      detail::quantize_v_tile<In, HeadDim>(data, s_stat, s_tile, detail::kv_v_out<HeadDim>(p.v, bh), p.v.seq_len_pad,
                                           tok0, detail::kv_seq_pad(p.k, seq_len));
    }
  }
  // No final cluster barrier: no CTA reads another's shared memory, and a CTA with a chunk leaves only
  // after every partial pushed to it has landed (its mbarrier wait above).
}

}  // namespace sagejit::kernels
