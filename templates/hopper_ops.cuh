// hopper_ops.cuh — the sm_90a PTX the Hopper attention kernel is built from: mbarriers, TMA (bulk
// tensor copies through a tensor map), wgmma shared-memory matrix descriptors, the warpgroup MMAs
// (s8 QKᵀ with both operands in shared memory; e4m3 P·V with P in registers, or f16/bf16 P·V with
// P in registers and an MN-major V), and setmaxnreg.
//
// Like mma_ops.cuh this is inline PTX over our own typedefs: NVRTC sees no CUDA header. Everything
// here needs `--gpu-architecture=sm_90a`: wgmma and setmaxnreg exist only on the arch-specific
// target, so including this file in a unit for any other device target is
// a compile error, never a kernel that fails at run time. How it fails otherwise: a wrong
// descriptor or tensor map is not diagnosed by the hardware — it silently computes on the wrong
// bytes (or hangs waiting on an mbarrier whose byte count never arrives); tests/gpu/
// test_hopper_ops.cpp pins every layout below against a host reference.
//
// PTX ISA sections relied on (by name; their numbers move between ISA versions):
//   "cp.async.bulk.tensor" (TMA, .mbarrier::complete_tx::bytes completion, out-of-bound fill),
//   "cp.async.bulk" (the 1-D copy, same completion),
//   "cp.async.bulk.commit_group" / "cp.async.bulk.wait_group" (TMA stores),
//   "mbarrier" (init, arrive, expect-tx, try_wait.parity; phases and the tx-count),
//   "membar/fence" (fence.proxy.async, fence.mbarrier_init),
//   "Asynchronous Warpgroup Level Matrix Multiply-Accumulate": "Matrix Descriptor Format",
//     "Shared Memory Matrix Layout" (swizzling modes), "Register Fragments" (accumulator D and
//     matrix A of .m64nNk32 and .m64nNk16), wgmma.fence / commit_group / wait_group, wgmma.mma_async,
//   "setmaxnreg", "bar.sync / bar.arrive"; and the driver API's cuTensorMapEncodeTiled.
//
// ---- The wgmma accumulator layout (D of m64nN, f32 or s32) --------------------------------------
// A warpgroup is 4 consecutive warps (128 threads, the first warp's index a multiple of 4). Warp w
// of the warpgroup owns rows 16w .. 16w+15 of the 64-row tile, and within its 16 rows the layout is
// mma.sync m16n8's, repeated along N: lane = 4g + t holds, for each 8-column slice j (0 <= j < N/8),
//   d[4j + 0], d[4j + 1] = D(16w + g,     8j + 2t), D(16w + g,     8j + 2t + 1)
//   d[4j + 2], d[4j + 3] = D(16w + g + 8, 8j + 2t), D(16w + g + 8, 8j + 2t + 1)
// N/2 registers per thread. This is exactly quant_layout.cuh's m16n8 description per warp, with
// warp_q = 16 (each warp owns 16 query rows) and warp_k = the whole key block (every warp of the
// warpgroup sees all N keys): a thread's rows {g, g+8} share one per-thread Q scale (row % 8 == g)
// and its keys {8j + 2t, 8j + 2t + 1} over all j share one K scale ((key % 8) / 2 == t).
//
// ---- The 8-bit A-from-registers layout (m64nNk32, .e4m3/.e5m2/.s8/.u8) --------------------------
// Four 32-bit registers a[0..3] of four bytes each, byte b of a[r] being
//   row = 16w + g + 8 * (r % 2),   k = 4t + b + 16 * (r / 2)
// i.e. per warp it is mma.sync m16n8k32's A fragment. So the P accumulators of QKᵀ (keys
// {8j + 2t, 8j + 2t + 1}) become the A fragment without shuffles when V is stored with
// quant_layout.cuh's token permutation: see pack_p_e4m3 below.
#pragma once

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "hopper_ops.cuh needs --gpu-architecture=sm_90a (wgmma and setmaxnreg are sm_90a-only)"
#endif

#include "mma_ops.cuh"

namespace sagejit::kernels::hopper {

using mma_ops::i32;
using mma_ops::u16;
using mma_ops::u32;
using mma_ops::u64;
using mma_ops::u8;
using mma_ops::smem_u32;

constexpr int kWarpgroupThreads = 128;

// ---- tensor maps --------------------------------------------------------------------------------

// The device-side view of the driver's CUtensorMap (cuda.h: 16 opaque 64-bit words). A kernel takes
// it by value as `const __grid_constant__ TmaDescriptor` so that its address is a parameter-space
// address the TMA unit can read (a tensor-map may live in .param space); the host passes a
// pointer to its CUtensorMap in the launch's argument array. The driver requires 64-byte alignment;
// CUDA 13's host type asks for 128, which only matters for where the host stores it.
struct alignas(64) TmaDescriptor {
  unsigned long long data[16];
};
static_assert(sizeof(TmaDescriptor) == 128, "a tensor map is 128 bytes");

// The generic address of a tensor map parameter, as cp.async.bulk.tensor takes it.
__device__ __forceinline__ u64 tma_address(const TmaDescriptor& desc) {
  return reinterpret_cast<u64>(&desc);
}

// Fetch the tensor map into the TMA unit's descriptor cache before the first copy needs it.
__device__ __forceinline__ void prefetch_tma_descriptor(const TmaDescriptor& desc) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(tma_address(desc)) : "memory");
}

// ---- mbarriers ----------------------------------------------------------------------------------
//
// An mbarrier is a 64-bit word in shared memory (8-byte aligned) counting pending arrivals and
// pending transaction bytes of its current phase. A phase completes when both reach zero; waiters
// test the parity of the phase they wait for (0 for the first, then 1, 0, ...). A TMA producer calls
// arrive_expect_tx(bytes) once per stage, then issues copies whose completion decrements the byte
// count; the consumers wait on the stage's parity and later arrive on an "empty" barrier.

// `count`: the arrivals that complete one phase (e.g. 1 for a TMA "full" barrier; the number of
// consumer threads or warps for an "empty" barrier). Call from one thread, then fence_barrier_init
// and a CTA barrier before any other thread or the async proxy uses it.
__device__ __forceinline__ void mbarrier_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes initialized mbarriers visible to the async proxy (TMA) and to other CTAs of the cluster.
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive(u32 bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// One arrival where `pred` holds, as one predicated instruction: no branch for the other threads of
// the warp to wait at, and no returned state for this one to wait for.
__device__ __forceinline__ void mbarrier_arrive_if(bool pred, u32 bar) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %1, 0;\n@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n" ::"r"(bar),
      "r"(static_cast<int>(pred))
      : "memory");
}

// One arrival that also announces `bytes` of transactions (TMA copies) for the current phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}

// True once the phase with parity `parity` has completed. try_wait suspends the thread for a
// system-dependent time before returning false, so a spin on it does not hammer shared memory.
// Its acquire is at CTA scope, or with Cluster at cluster scope: for a phase completed by other CTAs
// of the cluster (st.async's complete_tx is a release at cluster scope) whose stored data this
// thread then reads.
template <bool Cluster = false>
__device__ __forceinline__ bool mbarrier_try_wait_parity(u32 bar, u32 parity) {
  u32 done;
  if constexpr (Cluster) {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } else {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  }
  return done != 0;
}

template <bool Cluster = false>
__device__ __forceinline__ void mbarrier_wait_parity(u32 bar, u32 parity) {
  while (!mbarrier_try_wait_parity<Cluster>(bar, parity)) {
  }
}

// Orders this thread's generic-proxy shared-memory writes before later async-proxy accesses (a TMA
// store reading the tile, a wgmma reading an operand written with st.shared).
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Four 8x8 16-bit matrices of the warp into shared memory: lane l holds, in r_k, row l / 4 and
// columns 2(l % 4), 2(l % 4) + 1 of matrix k (the m16n8 accumulator's fragment), and lanes 8k..8k+7
// give the addresses of matrix k's rows 0..7 (16 bytes each).
__device__ __forceinline__ void stmatrix_x4(u32 addr, u32 r0, u32 r1, u32 r2, u32 r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}

// Named barriers 1..15 for a subset of the CTA (barrier 0 is __syncthreads). `threads` is a
// multiple of 32. sync waits; arrive only signals (a producer of a ping-pong hand-off).
__device__ __forceinline__ void named_barrier_sync(u32 id, u32 threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(u32 id, u32 threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---- TMA ----------------------------------------------------------------------------------------
//
// Coordinates are in elements, innermost first (c0 is the contiguous dimension), signed: a box that
// reaches outside the tensor (negative, or past globalDim) is filled with zeros in shared memory for
// loads, and the outside part is dropped for stores. Each load adds the box's full byte count
// (in-bounds or not) to the mbarrier's transaction count. `dst` must be 128-byte aligned, and
// aligned to the swizzle's repeat (1024 bytes for 128B swizzle) when wgmma reads it.

__device__ __forceinline__ void tma_load_2d(u32 dst, const TmaDescriptor& desc, u32 bar, i32 c0,
                                            i32 c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];\n" ::"r"(dst),
      "l"(tma_address(desc)), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}
__device__ __forceinline__ void tma_load_3d(u32 dst, const TmaDescriptor& desc, u32 bar, i32 c0,
                                            i32 c1, i32 c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(dst),
      "l"(tma_address(desc)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}
__device__ __forceinline__ void tma_load_4d(u32 dst, const TmaDescriptor& desc, u32 bar, i32 c0,
                                            i32 c1, i32 c2, i32 c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5, %6}], [%2];\n" ::"r"(dst),
      "l"(tma_address(desc)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// Shared -> global through the tensor map (the epilogue). Issue after fence_proxy_async_shared()
// and a barrier over the threads that wrote the tile; then tma_store_commit() and, before the
// tile's shared memory is reused or the CTA exits, tma_store_wait_read<0>().
// A 1-D bulk copy (no tensor map) of `bytes` from global `src` to shared `dst`, completing on `bar`
// as transaction bytes like the tiled loads: both addresses 16-byte aligned, bytes a multiple of 16.
__device__ __forceinline__ void bulk_load(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

__device__ __forceinline__ void tma_store_2d(const TmaDescriptor& desc, u32 src, i32 c0, i32 c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(
                   tma_address(desc)),
               "r"(src), "r"(c0), "r"(c1)
               : "memory");
}
__device__ __forceinline__ void tma_store_3d(const TmaDescriptor& desc, u32 src, i32 c0, i32 c1,
                                             i32 c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
          tma_address(desc)),
      "r"(src), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}
__device__ __forceinline__ void tma_store_4d(const TmaDescriptor& desc, u32 src, i32 c0, i32 c1,
                                             i32 c2, i32 c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
          tma_address(desc)),
      "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}
__device__ __forceinline__ void tma_store_commit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Wait until at most N committed store groups still read shared memory (the source may be reused).
template <int N>
__device__ __forceinline__ void tma_store_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
// Wait until at most N committed store groups are incomplete (their writes are done).
template <int N>
__device__ __forceinline__ void tma_store_wait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- wgmma shared-memory matrix descriptors -----------------------------------------------------
//
// A 64-bit descriptor says where an operand tile lives in shared memory ("Matrix Descriptor Format"):
//   bits  0-13  start address >> 4            bits 16-29  leading-dimension byte offset >> 4 (LBO)
//   bits 32-45  stride-dimension byte offset >> 4 (SBO)
//   bits 49-51  base offset (0: every swizzled tile here starts on its swizzle repeat boundary)
//   bits 62-63  swizzle: 0 none, 1 128B, 2 64B, 3 32B
// The unit is the "core matrix": 8 rows (M or N) of 16 bytes along K. Our 8-bit operands are K-major
// (K contiguous), the only layout wgmma supports for 8-bit types (the f16 V of the f16 P·V kernel is
// MN-major: make_mn_major_desc below):
//   swizzled (W = 32, 64 or 128 bytes): rows of W bytes, 8-row groups of 8·W bytes, as TMA writes
//     a box whose inner extent is W bytes with the matching CU_TENSOR_MAP_SWIZZLE_{W}B. SBO = 8·W
//     (from one 8-row group to the next); LBO is unused (the k32 slice of one wgmma, 32 bytes,
//     never leaves a swizzle row) and conventionally 1. A k-step inside the swizzle row advances
//     the start address by 32 bytes: the hardware applies the XOR swizzle to the final address
//     bits, so the tile must start on a 8·W-byte boundary (1024 for 128B) for base offset 0.
//   none (interleaved): each core matrix is 128 contiguous bytes (8 rows × 16 bytes); LBO = bytes
//     from one core matrix to the next along K, SBO = bytes from one 8-row group to the next.
enum class Swizzle : u32 { none = 0, b128 = 1, b64 = 2, b32 = 3 };

// Bytes of one swizzled row (the TMA box's inner extent); 16 for none (one core-matrix row).
__host__ __device__ constexpr u32 swizzle_bytes(Swizzle s) {
  return s == Swizzle::b128 ? 128 : s == Swizzle::b64 ? 64 : s == Swizzle::b32 ? 32 : 16;
}
// The swizzle whose span is `bytes` (128, 64 or 32): rows of that length, as TMA writes them.
__host__ __device__ constexpr Swizzle swizzle_of_span(u32 bytes) {
  return bytes == 128 ? Swizzle::b128 : bytes == 64 ? Swizzle::b64 : bytes == 32 ? Swizzle::b32 : Swizzle::none;
}

__host__ __device__ constexpr u64 make_smem_desc(u32 smem_addr, Swizzle swizzle, u32 lbo_bytes,
                                                 u32 sbo_bytes) {
  return static_cast<u64>((smem_addr >> 4) & 0x3FFF) |
         (static_cast<u64>((lbo_bytes >> 4) & 0x3FFF) << 16) |
         (static_cast<u64>((sbo_bytes >> 4) & 0x3FFF) << 32) |
         (static_cast<u64>(static_cast<u32>(swizzle)) << 62);
}

// The descriptor of a K-major tile written by TMA with `swizzle` (not none): rows of
// swizzle_bytes(swizzle) bytes, packed.
__host__ __device__ constexpr u64 make_kmajor_desc(u32 smem_addr, Swizzle swizzle) {
  return make_smem_desc(smem_addr, swizzle, 16, 8 * swizzle_bytes(swizzle));
}

// A descriptor from its high word (SBO, swizzle: a compile-time constant for a fixed layout) and its
// low word (start address and LBO). A kernel whose tiles never move keeps only the low word, and
// ptxas then builds the wgmma operands with uniform moves.
__host__ __device__ constexpr u64 wgmma_desc(u32 hi, u32 lo) { return (static_cast<u64>(hi) << 32) | lo; }

// The descriptor of an MN-major 16-bit B tile (N contiguous), as TMA writes boxes of [rows along K ×
// W/2 elements along N] with the W-byte swizzle (W = 128 or 64): each K row is W bytes, 8 rows make
// one swizzle atom (SBO = 8·W: the next 8 rows along K), and the next W/2 elements along N live in
// the next box, `box_bytes` further on (LBO; CUTLASS's canonical MN-major SW128 / SW64 layouts, in
// elements ((8,W/16,m),(8,k)) : ((1,8,LBO),(W/2,SBO))). A k16 step advances the start by 16 rows =
// 16·W bytes: whole atoms, so the swizzle phase never changes. f16/bf16 only: wgmma has no MN-major
// 8-bit operand.
__host__ __device__ constexpr u64 make_mn_major_desc(u32 smem_addr, Swizzle swizzle, u32 box_bytes) {
  return make_smem_desc(smem_addr, swizzle, box_bytes, 8 * swizzle_bytes(swizzle));
}

// The same tile `bytes` further on (a k-step inside a swizzle row, or the next stage). The start
// field holds addresses below 256 KiB, so adding to the low word never carries into LBO.
__host__ __device__ constexpr u64 desc_advance(u64 desc, u32 bytes) { return desc + (bytes >> 4); }

// ---- warpgroup MMA: ordering ------------------------------------------------------------------
//
// wgmma.mma_async reads its register operands (accumulators, A) asynchronously. Before the first
// wgmma, and whenever registers it uses were written since the last one, issue wgmma_fence(); after
// issuing a batch, wgmma_commit(); before reading accumulators (or overwriting A registers or the
// shared-memory operands), wgmma_wait<N>() with N the number of newer batches allowed in flight.
// fence_operands keeps the compiler from moving register reads or writes across those points: call
// it on the accumulators and A registers right before wgmma_fence(), and on the accumulators right
// after wgmma_wait(). Without the first, register writes (a zero fill, a cvt) can sink between the
// fence and the wgmma, and ptxas then injects its own warpgroup.arrive (info C7519) — a sign that
// wgmmas were serialized; a clean compile prints no C7519.
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

template <int Count>
__device__ __forceinline__ void fence_operands(float (&r)[Count]) {
#pragma unroll
  for (int i = 0; i < Count; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int Count>
__device__ __forceinline__ void fence_operands(i32 (&r)[Count]) {
#pragma unroll
  for (int i = 0; i < Count; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
template <int Count>
__device__ __forceinline__ void fence_operands(u32 (&r)[Count]) {
#pragma unroll
  for (int i = 0; i < Count; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// ---- warpgroup MMA: the instructions ------------------------------------------------------------
//
// d (+)= A · Bᵀ for a 64×N output, K = 32, A: 64×32, B: N×32, both K-major. `accumulate == false`
// overwrites d (scale-d = 0: no zeroing pass needed). All 128 threads of the warpgroup execute it
// with identical descriptors.
//   s8:   A and B from shared-memory descriptors; s32 accumulators (|sum| <= 127²·K: no overflow
//         for any head dim).
//   e4m3: A from registers (layout above), B from a descriptor; f32 accumulators, but the tensor
//         core keeps only about 14 significant bits while it accumulates (DeepSeek-V3 §3.3.2):
//         promote into an fp32 sum every 128 keys or fewer.
//   f16 / bf16:  K = 16, A from registers (the m16n8k16 fragment per warp, pack_p_f16), B MN-major from a
//         descriptor (make_mn_major_desc; transpose-b = 1); f32 accumulators at full precision,
//         so P·V may accumulate straight into O.
// Generated operand lists (one register per accumulator): N = 64, 128, 256 (and 8 for the row sums,
// 96 for P·V at head dim 96, 72 / 104 / 136 for P·V with its row sum at head dims 64 / 96 / 128).

__device__ __forceinline__ void wgmma_m64n64k32_s8_ss(i32 (&d)[32], u64 desc_a, u64 desc_b,
                                                          bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p;\n}\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));
}

__device__ __forceinline__ void wgmma_m64n128k32_s8_ss(i32 (&d)[64], u64 desc_a, u64 desc_b,
                                                          bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p;\n}\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));
}

// e4m3 × e4m3 with both operands from shared memory (no kernel uses it: P·V takes P from registers;
// bench/overlap_probe.cu and bench/pingpong_probe.cu measure it).
__device__ __forceinline__ void wgmma_m64n128k32_e4m3_ss(float (&d)[64], u64 desc_a, u64 desc_b,
                                                            bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1;\n}\n"
      :
        "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));
}

__device__ __forceinline__ void wgmma_m64n256k32_s8_ss(i32 (&d)[128], u64 desc_a, u64 desc_b,
                                                          bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, %128, %129, p;\n}\n"
      :
        "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63]),
        "+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]),
        "+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]),
        "+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]),
        "+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95]),
        "+r"(d[96]), "+r"(d[97]), "+r"(d[98]), "+r"(d[99]), "+r"(d[100]), "+r"(d[101]), "+r"(d[102]), "+r"(d[103]),
        "+r"(d[104]), "+r"(d[105]), "+r"(d[106]), "+r"(d[107]), "+r"(d[108]), "+r"(d[109]), "+r"(d[110]), "+r"(d[111]),
        "+r"(d[112]), "+r"(d[113]), "+r"(d[114]), "+r"(d[115]), "+r"(d[116]), "+r"(d[117]), "+r"(d[118]), "+r"(d[119]),
        "+r"(d[120]), "+r"(d[121]), "+r"(d[122]), "+r"(d[123]), "+r"(d[124]), "+r"(d[125]), "+r"(d[126]), "+r"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));
}

// Register-A wgmmas (e4m3 k32 and f16 k16) with f32 accumulators: the asm body for N = 8, 64, 72, 96,
// 104, 128, 136, 256 (D + 8: P·V and its row sum in one wgmma), the instruction string and its
// trailing immediates (scale-a, scale-b[, transpose-b]) given. Generated operand lists: one register
// per accumulator.
#define SAGEJIT_WGMMA_RS_N8(INSTR, TAIL)                                                            \
  asm volatile(                                                                                     \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n" INSTR " {"                                        \
      "%0, %1, %2, %3"                                                                              \
      "}, {%4, %5, %6, %7}, %8, p, " TAIL ";\n}\n"                                                  \
      :                                                                                             \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                                \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N64(INSTR, TAIL)                                                                     \
  asm volatile(                                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" INSTR " {"                                                 \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                        \
      "}, {%32, %33, %34, %35}, %36, p, " TAIL ";\n}\n"                                                       \
      :                                                                                                       \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N96(INSTR, TAIL)                                                                     \
  asm volatile(                                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %53, 0;\n" INSTR " {"                                                 \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                      \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47"                        \
      "}, {%48, %49, %50, %51}, %52, p, " TAIL ";\n}\n"                                                       \
      :                                                                                                       \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N128(INSTR, TAIL)                                                                    \
  asm volatile(                                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" INSTR " {"                                                 \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                      \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                      \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"                        \
      "}, {%64, %65, %66, %67}, %68, p, " TAIL ";\n}\n"                                                       \
      :                                                                                                       \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N256(INSTR, TAIL)                                                                            \
  asm volatile(                                                                                                       \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n" INSTR " {"                                                        \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                        \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                              \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                              \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                              \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                              \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                              \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "                  \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"                \
      "}, {%128, %129, %130, %131}, %132, p, " TAIL ";\n}\n"                                                          \
      :                                                                                                               \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),                 \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),           \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),         \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),         \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),         \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),         \
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),         \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),         \
      "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),         \
      "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),         \
      "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),         \
      "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),         \
      "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),     \
      "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
      "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
      "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N72(INSTR, TAIL)                                                                     \
  asm volatile(                                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %41, 0;\n" INSTR " {"                                                 \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                      \
      "%32, %33, %34, %35"                                                                                    \
      "}, {%36, %37, %38, %39}, %40, p, " TAIL ";\n}\n"                                                       \
      :                                                                                                       \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])                                                      \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N104(INSTR, TAIL)                                                                    \
  asm volatile(                                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %57, 0;\n" INSTR " {"                                                 \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                      \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                      \
      "%48, %49, %50, %51"                                                                                    \
      "}, {%52, %53, %54, %55}, %56, p, " TAIL ";\n}\n"                                                       \
      :                                                                                                       \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51])                                                      \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

#define SAGEJIT_WGMMA_RS_N136(INSTR, TAIL)                                                                    \
  asm volatile(                                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %73, 0;\n" INSTR " {"                                                 \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                      \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                      \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                      \
      "%64, %65, %66, %67"                                                                                    \
      "}, {%68, %69, %70, %71}, %72, p, " TAIL ";\n}\n"                                                       \
      :                                                                                                       \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
      "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67])                                                      \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(static_cast<int>(accumulate)))

__device__ __forceinline__ void wgmma_m64n8k32_e4m3_rs(float (&d)[4], const u32 (&a)[4], u64 desc_b,
                                                        bool accumulate) {
  SAGEJIT_WGMMA_RS_N8("wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3", "1, 1");
}
__device__ __forceinline__ void wgmma_m64n64k32_e4m3_rs(float (&d)[32], const u32 (&a)[4], u64 desc_b,
                                                        bool accumulate) {
  SAGEJIT_WGMMA_RS_N64("wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3", "1, 1");
}
__device__ __forceinline__ void wgmma_m64n96k32_e4m3_rs(float (&d)[48], const u32 (&a)[4], u64 desc_b,
                                                       bool accumulate) {
  SAGEJIT_WGMMA_RS_N96("wgmma.mma_async.sync.aligned.m64n96k32.f32.e4m3.e4m3", "1, 1");
}
__device__ __forceinline__ void wgmma_m64n128k32_e4m3_rs(float (&d)[64], const u32 (&a)[4], u64 desc_b,
                                                        bool accumulate) {
  SAGEJIT_WGMMA_RS_N128("wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3", "1, 1");
}
__device__ __forceinline__ void wgmma_m64n256k32_e4m3_rs(float (&d)[128], const u32 (&a)[4], u64 desc_b,
                                                        bool accumulate) {
  SAGEJIT_WGMMA_RS_N256("wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3", "1, 1");
}

__device__ __forceinline__ void wgmma_m64n72k32_e4m3_rs(float (&d)[36], const u32 (&a)[4], u64 desc_b,
                                                        bool accumulate) {
  SAGEJIT_WGMMA_RS_N72("wgmma.mma_async.sync.aligned.m64n72k32.f32.e4m3.e4m3", "1, 1");
}
__device__ __forceinline__ void wgmma_m64n104k32_e4m3_rs(float (&d)[52], const u32 (&a)[4], u64 desc_b,
                                                         bool accumulate) {
  SAGEJIT_WGMMA_RS_N104("wgmma.mma_async.sync.aligned.m64n104k32.f32.e4m3.e4m3", "1, 1");
}
__device__ __forceinline__ void wgmma_m64n136k32_e4m3_rs(float (&d)[68], const u32 (&a)[4], u64 desc_b,
                                                         bool accumulate) {
  SAGEJIT_WGMMA_RS_N136("wgmma.mma_async.sync.aligned.m64n136k32.f32.e4m3.e4m3", "1, 1");
}

__device__ __forceinline__ void wgmma_m64n8k16_f16_rs_bmn(float (&d)[4], const u32 (&a)[4], u64 desc_b,
                                                          bool accumulate) {
  SAGEJIT_WGMMA_RS_N8("wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n64k16_f16_rs_bmn(float (&d)[32], const u32 (&a)[4], u64 desc_b,
                                                          bool accumulate) {
  SAGEJIT_WGMMA_RS_N64("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n128k16_f16_rs_bmn(float (&d)[64], const u32 (&a)[4], u64 desc_b,
                                                          bool accumulate) {
  SAGEJIT_WGMMA_RS_N128("wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n256k16_f16_rs_bmn(float (&d)[128], const u32 (&a)[4], u64 desc_b,
                                                          bool accumulate) {
  SAGEJIT_WGMMA_RS_N256("wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16", "1, 1, 1");
}

__device__ __forceinline__ void wgmma_m64n8k16_bf16_rs_bmn(float (&d)[4], const u32 (&a)[4], u64 desc_b,
                                                           bool accumulate) {
  SAGEJIT_WGMMA_RS_N8("wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n64k16_bf16_rs_bmn(float (&d)[32], const u32 (&a)[4], u64 desc_b,
                                                           bool accumulate) {
  SAGEJIT_WGMMA_RS_N64("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n128k16_bf16_rs_bmn(float (&d)[64], const u32 (&a)[4], u64 desc_b,
                                                           bool accumulate) {
  SAGEJIT_WGMMA_RS_N128("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n256k16_bf16_rs_bmn(float (&d)[128], const u32 (&a)[4], u64 desc_b,
                                                           bool accumulate) {
  SAGEJIT_WGMMA_RS_N256("wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16", "1, 1, 1");
}

__device__ __forceinline__ void wgmma_m64n96k16_f16_rs_bmn(float (&d)[48], const u32 (&a)[4], u64 desc_b,
                                                          bool accumulate) {
  SAGEJIT_WGMMA_RS_N96("wgmma.mma_async.sync.aligned.m64n96k16.f32.f16.f16", "1, 1, 1");
}
__device__ __forceinline__ void wgmma_m64n96k16_bf16_rs_bmn(float (&d)[48], const u32 (&a)[4], u64 desc_b,
                                                           bool accumulate) {
  SAGEJIT_WGMMA_RS_N96("wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16", "1, 1, 1");
}

#undef SAGEJIT_WGMMA_RS_N8
#undef SAGEJIT_WGMMA_RS_N72
#undef SAGEJIT_WGMMA_RS_N104
#undef SAGEJIT_WGMMA_RS_N136
#undef SAGEJIT_WGMMA_RS_N64
#undef SAGEJIT_WGMMA_RS_N96
#undef SAGEJIT_WGMMA_RS_N128
#undef SAGEJIT_WGMMA_RS_N256

template <int N>
__device__ __forceinline__ void wgmma_s8_ss(i32 (&d)[N / 2], u64 desc_a, u64 desc_b, bool accumulate) {
  static_assert(N == 64 || N == 128 || N == 256, "wgmma s8 wrappers exist for N = 64, 128, 256");
  if constexpr (N == 64) wgmma_m64n64k32_s8_ss(d, desc_a, desc_b, accumulate);
  else if constexpr (N == 128) wgmma_m64n128k32_s8_ss(d, desc_a, desc_b, accumulate);
  else wgmma_m64n256k32_s8_ss(d, desc_a, desc_b, accumulate);
}

template <int N>
__device__ __forceinline__ void wgmma_e4m3_rs(float (&d)[N / 2], const u32 (&a)[4], u64 desc_b,
                                              bool accumulate) {
  static_assert(N == 8 || N == 64 || N == 72 || N == 96 || N == 104 || N == 128 || N == 136 || N == 256,
                "wgmma e4m3 wrappers exist for N = 8, 64, 72, 96, 104, 128, 136, 256");
  if constexpr (N == 8) wgmma_m64n8k32_e4m3_rs(d, a, desc_b, accumulate);
  else if constexpr (N == 72) wgmma_m64n72k32_e4m3_rs(d, a, desc_b, accumulate);
  else if constexpr (N == 104) wgmma_m64n104k32_e4m3_rs(d, a, desc_b, accumulate);
  else if constexpr (N == 136) wgmma_m64n136k32_e4m3_rs(d, a, desc_b, accumulate);
  else if constexpr (N == 64) wgmma_m64n64k32_e4m3_rs(d, a, desc_b, accumulate);
  else if constexpr (N == 96) wgmma_m64n96k32_e4m3_rs(d, a, desc_b, accumulate);
  else if constexpr (N == 128) wgmma_m64n128k32_e4m3_rs(d, a, desc_b, accumulate);
  else wgmma_m64n256k32_e4m3_rs(d, a, desc_b, accumulate);
}

// d (+)= A · B for f16 (or bf16) with B MN-major (N contiguous: V as stored, [keys × channels]), K = 16.
template <int N, bool Bf16 = false>
__device__ __forceinline__ void wgmma_f16_rs_bmn(float (&d)[N / 2], const u32 (&a)[4], u64 desc_b, bool accumulate) {
  static_assert(N == 8 || N == 64 || N == 96 || N == 128 || N == 256,
                "wgmma f16 wrappers exist for N = 8, 64, 96, 128, 256");
  if constexpr (Bf16) {
    if constexpr (N == 8) wgmma_m64n8k16_bf16_rs_bmn(d, a, desc_b, accumulate);
    else if constexpr (N == 64) wgmma_m64n64k16_bf16_rs_bmn(d, a, desc_b, accumulate);
    else if constexpr (N == 96) wgmma_m64n96k16_bf16_rs_bmn(d, a, desc_b, accumulate);
    else if constexpr (N == 128) wgmma_m64n128k16_bf16_rs_bmn(d, a, desc_b, accumulate);
    else wgmma_m64n256k16_bf16_rs_bmn(d, a, desc_b, accumulate);
  } else {
    if constexpr (N == 8) wgmma_m64n8k16_f16_rs_bmn(d, a, desc_b, accumulate);
    else if constexpr (N == 64) wgmma_m64n64k16_f16_rs_bmn(d, a, desc_b, accumulate);
    else if constexpr (N == 96) wgmma_m64n96k16_f16_rs_bmn(d, a, desc_b, accumulate);
    else if constexpr (N == 128) wgmma_m64n128k16_f16_rs_bmn(d, a, desc_b, accumulate);
    else wgmma_m64n256k16_f16_rs_bmn(d, a, desc_b, accumulate);
  }
}

// ---- register layouts as functions (for masks, scales, epilogues and tests) -----------------------

// Row (0..63) and column of accumulator register i of warpgroup thread `tid` (0..127); see the
// layout at the top of this file.
__host__ __device__ constexpr int acc_row(int tid, int i) {
  return 16 * (tid / 32) + (tid % 32) / 4 + 8 * ((i / 2) % 2);
}
__host__ __device__ constexpr int acc_col(int tid, int i) { return 8 * (i / 4) + 2 * (tid % 4) + i % 2; }

// Row and k (0..31) of byte b of A register r (0..3) of warpgroup thread `tid`.
__host__ __device__ constexpr int a_row(int tid, int r) { return 16 * (tid / 32) + (tid % 32) / 4 + 8 * (r % 2); }
__host__ __device__ constexpr int a_k(int tid, int r, int b) { return 4 * (tid % 4) + b + 16 * (r / 2); }

// P (the f32 accumulators of QKᵀ, scaled into [0, 448]) -> the e4m3 A fragment of P·V for k-step
// `kstep`, i.e. keys 32·kstep .. 32·kstep + 31 of the block, which are the accumulator slices
// j = 4·kstep .. 4·kstep + 3, registers s[16·kstep .. 16·kstep + 15].
// A register r, byte b sits at logical k = 4t + b + 16(r/2) and holds key
//   32·kstep + 16(r/2) + {2t, 2t+1, 8+2t, 9+2t}[b]
// which is layout::v_token_at(4t + b) within its 16-key group: V must be stored with
// quant_layout.cuh's token permutation (logical position p of each 16-key group holds token
// v_token_at(p)), exactly as for mma.sync m16n8k32. No shuffles, four cvt per register pair.
template <int Count>
__device__ __forceinline__ void pack_p_e4m3(const float (&s)[Count], int kstep, u32 (&a)[4]) {
  const int i = 16 * kstep;
  a[0] = mma_ops::f32x4_to_e4m3x4(s[i + 0], s[i + 1], s[i + 4], s[i + 5]);
  a[1] = mma_ops::f32x4_to_e4m3x4(s[i + 2], s[i + 3], s[i + 6], s[i + 7]);
  a[2] = mma_ops::f32x4_to_e4m3x4(s[i + 8], s[i + 9], s[i + 12], s[i + 13]);
  a[3] = mma_ops::f32x4_to_e4m3x4(s[i + 10], s[i + 11], s[i + 14], s[i + 15]);
}

// P (the f32 accumulators of QKᵀ) -> the f16 A fragment of P·V for k-step `kstep` (keys 16·kstep ..
// 16·kstep + 15 of the block: accumulator slices 2·kstep and 2·kstep + 1, registers s[8·kstep .. +7]).
// The k16 A fragment (register r: row g + 8(r%2), k = 2t + 8(r/2) and + 1) is the accumulator layout
// itself, so V needs no permutation: one cvt per register. Bf16: bf16 pairs, for a bf16 V.
template <bool Bf16 = false, int Count>
__device__ __forceinline__ void pack_p_f16(const float (&s)[Count], int kstep, u32 (&a)[4]) {
  const int i = 8 * kstep;
  a[0] = mma_ops::f32x2_to_half2<Bf16>(s[i + 0], s[i + 1]);
  a[1] = mma_ops::f32x2_to_half2<Bf16>(s[i + 2], s[i + 3]);
  a[2] = mma_ops::f32x2_to_half2<Bf16>(s[i + 4], s[i + 5]);
  a[3] = mma_ops::f32x2_to_half2<Bf16>(s[i + 6], s[i + 7]);
}

// ---- register reallocation ----------------------------------------------------------------------
//
// Producer warpgroups give registers back (dec) and consumer warpgroups take them (inc), so that
// consumers can hold 64×D f32 output accumulators plus a 64×block_k score tile. N is a multiple of 8
// in [24, 256]; every thread of the warpgroup executes the same instruction. The kernel must be
// launched with a register count (maxrregcount / __launch_bounds__) that the pool can satisfy:
// 65536 per SM = sum over warpgroups of 128 · N (e.g. 1 producer at 24-40 + 2 consumers at 240).
template <u32 N>
__device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(N % 8 == 0 && N >= 24 && N <= 256, "setmaxnreg takes a multiple of 8 in [24, 256]");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <u32 N>
__device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(N % 8 == 0 && N >= 24 && N <= 256, "setmaxnreg takes a multiple of 8 in [24, 256]");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

}  // namespace sagejit::kernels::hopper
