// attn_wgmma_kv_ring.cuh — the K/V ring of the single-warpgroup kernel's shared form
// (attention_wgmma_single with Cfg::warpgroups > 1): the warpgroups of one CTA, each with its own
// 64 query rows of one (batch, head), read every K/V block from one ring of kWgmmaSharedSlots slots.
//
// Why: the single form is power-bound on the H100 and H200. Each of its CTAs copies its own 32 KiB of
// K and V per block from L2, and those copies cost 8–10% of the clock under the 700 W cap
// (bench/results/2026-11-28-power-bound-h100.md). Shared by three warpgroups, a block is copied once
// per SM instead of three times.
//
// How the ring keeps off the warpgroups' chains (each block's QKᵀ → softmax → P·V is latency-bound,
// so anything a warp waits for there costs the whole warpgroup;
// bench/results/2026-11-28-shared-ring-h200.md):
//   - a slot's K and V land on one `full` barrier: one wait per block;
//   - a warpgroup releases a slot once, after its P·V of the block (its QKᵀ read K before that), by one
//     predicated mbarrier arrival of its thread 0 on the slot's `empty` barrier (counted for the
//     active warpgroups): no branch, no returned value. A returning shared-memory atomic per release,
//     with the last releaser refilling, cost 6% of the rate per clock;
//   - the refills take turns over the warpgroups: at block j (from kSlots − kLead on), warp 0 of the
//     warpgroup whose turn it is waits until every warpgroup released block j + kLead − kSlots and
//     copies block j + kLead into that slot, while its own QKᵀ of block j is in flight. With kLead = 1
//     that block is j − 3, which the warpgroups, running within about a block of each other, have
//     almost always released; the copy then has about the refilling warpgroup's block time to land
//     before block j + 1 is read. kLead = 2 (waiting for block j − 2) ran 0.5–1.4% slower without a
//     mask and 0.8–3.2% slower causal at 8k–32k; kLead = 3 ran 5–6% slower without a mask and 3% causal
//     (H200, kernel only, same calls; bench/results/2026-11-28-stale-max-and-wave-rule-h200.md §5).
// Every active warpgroup calls wait, refill and release for every block the ring carries, in order,
// also for blocks it does not compute (causal: rows that end before the CTA's last; then only its
// warp 0, which refills and releases); such a block's wait comes first, since an arrival on `empty`
// before the slot's previous phase completed would count for that phase.
// Failure modes: none at run time; the slot and phase arithmetic assume j ≥ 0 and n_active ≥ 1 (the
// kernel leaves before the ring when a CTA has no tile).
#pragma once

#include "attn_params.cuh"
#include "hopper_ops.cuh"

namespace sagejit::kernels {

struct WgmmaKvRing {
  static constexpr int kSlots = kWgmmaSharedSlots;
  static constexpr int kLead = 1;  // block j + kLead is copied under block j's QKᵀ
  static_assert(kLead >= 1 && kLead < kSlots, "a refill targets a slot that an earlier block released");
  mma_ops::u32 full0, empty0;  // the slots' barriers: slot s's at full0 + 8 s, empty0 + 8 s
  int turn = 0;                // the warpgroup whose turn it is to refill at the current block

  __device__ static int slot(int j) { return static_cast<int>(static_cast<mma_ops::u32>(j) % kSlots); }
  __device__ static mma_ops::u32 parity(int j) { return (static_cast<mma_ops::u32>(j) / kSlots) & 1; }
  __device__ mma_ops::u32 full(int j) const { return full0 + 8 * slot(j); }

  // One thread, before any copy: `full` counts the copying thread's arrival, `empty` one release per
  // active warpgroup.
  __device__ void init(int n_active) const {
    for (int s = 0; s < kSlots; ++s) {
      hopper::mbarrier_init(full0 + 8 * s, 1);
      hopper::mbarrier_init(empty0 + 8 * s, n_active);
    }
  }
  // Every thread, before reading block j (in slot `s` = slot(j)).
  __device__ void wait(int j, int s) const { hopper::mbarrier_wait_parity(full0 + 8 * s, parity(j)); }
  // Every warpgroup, once its P·V of block j completed (wgmma_wait): thread0 marks it done with the slot.
  __device__ void release(int j, bool thread0) const { hopper::mbarrier_arrive_if(thread0, empty0 + 8 * slot(j)); }
  // Every thread of every warpgroup at block j, between issuing its QKᵀ and waiting for it (for a
  // block past the warpgroup's own rows, its warp 0 alone), with the number of blocks the ring
  // carries: load_kv(b) copies block b into slot(b) on full(b) (one thread).
  // (One flat condition: nested, `released >= 0` around the rest, it compiled to two more branches in
  // the loop and the form did 6% less per clock on the H200, 481 TOPS per GHz against 510
  // (bench/results/2026-11-28-shared-ring-flat-h200.md).)
  template <class LoadKv>
  __device__ void refill(int j, int ring_blocks, int n_active, int wg, int warp, int lane, LoadKv&& load_kv) {
    const int released = j + kLead - kSlots;  // the block whose slot block j + kLead takes
    if (warp == 0 && released >= 0 && j + kLead < ring_blocks && turn == wg) {
      hopper::mbarrier_wait_parity(empty0 + 8 * slot(released), parity(released));
      if (lane == 0) load_kv(j + kLead);
    }
    if (released >= 0) turn = turn + 1 == n_active ? 0 : turn + 1;
  }
};

}  // namespace sagejit::kernels
