// pingpong_probe.cu — do independent CTAs on an SM convoy on the tensor core? The single-warpgroup
// attention kernel runs 3 CTAs per SM (attn_wgmma_single.cuh), and its profile puts the tensor pipe
// and the MUFU pipe at 48% busy each (D = 128): busy times that add up to ~97%, as if the two
// never ran at once. This loop is the kernel's per-block work without its data movement:
// 4 × s8 m64n128k32 (QKᵀ from shared memory, accumulators started at the magic number), the
// online-softmax step (max, FFMA, MUFU.EX2, e4m3 packs), 4 × e4m3 m64n128k32 with P from registers
// into a fresh accumulator, and the promotion FFMA. Three ways to run 3 such warpgroups per SM:
//   ctas:     3 CTAs of one warpgroup each (what the kernel does);
//   wgs:      one CTA of 3 warpgroups, unsynchronized (the same, in one CTA);
//   pingpong: one CTA of 3 warpgroups that take turns to issue their wgmma batches (a token passed
//             round the warpgroups with named barriers, FlashAttention-3's ping-pong), so that one
//             warpgroup's batch is not interleaved with the others' and its softmax runs while
//             theirs do.
// Output: TOPS for each (the block's 2 · 64 · 128 · D · 2 operations per warpgroup and block); then
// ablations of the block's numerics (Variant below) at D = 128 and 64, each the median of 7 launches
// (~50 ms). Two more runs (bench/results/2026-11-28-power-bound-h100.md):
//   onecta             one CTA of three warpgroups with shared or private operands (Mode below);
//   sustained SECONDS  the kernel's numerics for that long at D = 128 and 64, to be read beside
//                      nvidia-smi's clock and power: the loop holds 1980 MHz under the card's power
//                      cap, where the attention kernel does not.
//
// Build and run on an sm_90a machine with the CUDA toolkit (not part of the CMake build):
//   nvcc -std=c++20 -gencode arch=compute_90a,code=sm_90a -O3 -I templates -cudart static \
//        -o pingpong_probe bench/pingpong_probe.cu && ./pingpong_probe
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hopper_ops.cuh"
#include "probe_util.cuh"

using namespace sagejit::kernels;
using namespace sagejit::kernels::hopper;
using namespace sagejit::kernels::mma_ops;

namespace {

constexpr int kSmem = 52 * 1024;  // Q, K, V and the 8 rows after V that an N = D + 8 B operand reads

// What a block computes (the kernel's numerics, or an ablation of it, "ctas" only):
//   0 the kernel's: int8 QKᵀ from the magic number, softmax, e4m3 P·V into a fresh accumulator,
//     promotion;
//   1 no promotion: P·V accumulates into O in the tensor core (no fp32 promotion FFMA);
//   2 QKᵀ in e4m3 from a zero accumulator (no magic-number start), the rest as 0;
//   3 the wgmma batches and their waits only (P a constant, no softmax, no promotion).
//   4 the kernel's, with the row sums as 8 more P·V columns (N = D + 8, as the kernel computes them;
//     the other variants leave the row sums out).
enum Variant { kKernel = 0, kNoPromotion = 1, kFp8Qk = 2, kMmaOnly = 3, kRowSum = 4 };

// The block's online-softmax step on the magic-number floats: the row max (a tree of 8 chains), one
// FFMA and one MUFU per score, e4m3 packs into p; returns alpha and updates row_max.
__device__ __forceinline__ float softmax_step(const float (&s)[64], float& row_max, u32 (&p)[16]) {
  float mx[8];
#pragma unroll
  for (int l = 0; l < 8; ++l) mx[l] = fmaxf(s[l], s[l + 8]);
#pragma unroll
  for (int i = 16; i < 64; ++i) mx[i % 8] = fmaxf(mx[i % 8], s[i]);
#pragma unroll
  for (int v = 4; v > 0; v /= 2) {
#pragma unroll
    for (int l = 0; l < v; ++l) mx[l] = fmaxf(mx[l], mx[l + v]);
  }
  const float m = fmaxf(row_max, fmaf(mx[0], 1e-7f, -1.2582912f));
  const float alpha = fast_exp2(row_max - m);
  row_max = m;
  const float bias = 8.8f - m - 1.2582912f;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    float e[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) e[j] = fast_exp2(fmaf(s[4 * i + j], 1e-7f, bias));
    p[i] = f32x4_to_e4m3x4(e[0], e[1], e[2], e[3]);
  }
  return alpha;
}

// One warpgroup's loop: `blocks` blocks of QKᵀ, softmax, P·V and promotion. `turns`: take the token
// (named barrier 1 + wg) before each wgmma batch and pass it on (1 + (wg + 1) % n) after.
template <bool Turns, int V = kKernel, int D = 128>
__device__ __forceinline__ float block_loop(u32 s, int wg, int n_wg, int blocks, u32 sq) {
  const u64 dk = make_kmajor_desc(s, Swizzle::b128), dq = make_kmajor_desc(sq, Swizzle::b128);
  const u64 dv = make_kmajor_desc(s + 32768, Swizzle::b128);
  float o[D / 2];
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float row_max = -1e30f, l[2] = {0.f, 0.f};  // l: the row sums of the thread's two rows (kRowSum)
  for (int b = 0; b < blocks; ++b) {
    float s[64];
    if constexpr (V == kFp8Qk) {
      fence_operands(s);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < D / 32; ++k) wgmma_m64n128k32_e4m3_ss(s, desc_advance(dq, 32 * k), desc_advance(dk, 32 * k), k > 0);
      wgmma_commit();
      wgmma_wait<0>();
      fence_operands(s);
    } else {
      i32 acc[64];
#pragma unroll
      for (int i = 0; i < 64; ++i) acc[i] = 0x4B400000;
      fence_operands(acc);
      if (Turns) named_barrier_sync(1 + wg, 256);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < D / 32; ++k) wgmma_s8_ss<128>(acc, desc_advance(dq, 32 * k), desc_advance(dk, 32 * k), true);
      wgmma_commit();
      if (Turns) named_barrier_arrive(1 + (wg + 1) % n_wg, 256);
      wgmma_wait<0>();
      fence_operands(acc);
#pragma unroll
      for (int i = 0; i < 64; ++i) s[i] = __int_as_float(acc[i]);
    }
    // Online softmax on the magic-number floats: max, one FFMA and one MUFU per score, e4m3 packs.
    u32 p[16];
    float alpha = 1.f;
    if constexpr (V == kMmaOnly) {
#pragma unroll
      for (int i = 0; i < 16; ++i) p[i] = __float_as_uint(s[4 * i]) & 0x30303030u;
    } else {
      alpha = softmax_step(s, row_max, p);
    }
    if constexpr (V == kNoPromotion || V == kMmaOnly) {
      fence_operands(o);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const u32 a[4] = {p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3]};
        wgmma_e4m3_rs<D>(o, a, desc_advance(dv, 32 * k), true);
      }
      wgmma_commit();
      wgmma_wait<0>();
      fence_operands(o);
      if constexpr (V == kNoPromotion) o[0] *= alpha;  // keeps alpha live, one FMUL
    } else {
      constexpr int kN = V == kRowSum ? D + 8 : D;
      float t[kN / 2];
#pragma unroll
      for (int i = 0; i < kN / 2; ++i) t[i] = 0.f;
      fence_operands(t);
      if (Turns) named_barrier_sync(1 + wg, 256);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const u32 a[4] = {p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3]};
        wgmma_e4m3_rs<kN>(t, a, desc_advance(dv, 32 * k), k > 0);
      }
      wgmma_commit();
      if (Turns) named_barrier_arrive(1 + (wg + 1) % n_wg, 256);
      wgmma_wait<0>();
      fence_operands(t);
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] = fmaf(o[i], alpha, t[i]);
      if constexpr (V == kRowSum) {  // the row sums' promotion, as the kernel's l = α·l + l_j
#pragma unroll
        for (int r = 0; r < 2; ++r) l[r] = fmaf(l[r], alpha, t[D / 2 + 2 * r]);
      }
    }
  }
  float out = 0.f;
  for (int i = 0; i < D / 2; ++i) out += o[i];
  return out + l[0] + l[1];
}

// Head dim 256 in the single-warpgroup form (which the kernel does not have: O is 128 registers a
// thread): QKᵀ as 8 k-steps of s8 m64n128k32, the softmax as above, and P·V in four parts of 64
// channels (the last with the 8 row-sum columns, N = 72), part h + 1 issued before part h is waited
// on and promoted, as the warp-specialized D = 256 kernel runs them. The operands' addresses wrap
// inside the probe's shared memory (their values do not matter here).
__device__ __forceinline__ float block_loop_256(u32 s, int blocks) {
  const u64 dk = make_kmajor_desc(s, Swizzle::b128), dq = make_kmajor_desc(s + 16384, Swizzle::b128);
  const u64 dv = make_kmajor_desc(s + 32768, Swizzle::b128);
  float o[128], l[2] = {0.f, 0.f};
  for (int i = 0; i < 128; ++i) o[i] = 0.f;
  float row_max = -1e30f;
  for (int b = 0; b < blocks; ++b) {
    i32 acc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0x4B400000;
    fence_operands(acc);
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < 8; ++k) wgmma_s8_ss<128>(acc, desc_advance(dq, 32 * (k % 4)), desc_advance(dk, 32 * (k % 4)), true);
    wgmma_commit();
    wgmma_wait<0>();
    fence_operands(acc);
    float sc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) sc[i] = __int_as_float(acc[i]);
    u32 p[16];
    const float alpha = softmax_step(sc, row_max, p);
    float ta[32], tb[32], tc[36];
    auto issue = [&](auto& t, int part) {
      fence_operands(t);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const u32 a[4] = {p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3]};
        wgmma_e4m3_rs<sizeof(t) / 2>(t, a, desc_advance(dv, 8192 * (part % 2) + 32 * k), k > 0);
      }
      wgmma_commit();
    };
    auto promote = [&](auto& t, int part) {
      fence_operands(t);
#pragma unroll
      for (int i = 0; i < 32; ++i) o[32 * part + i] = fmaf(o[32 * part + i], alpha, t[i]);
    };
    issue(ta, 0);
    issue(tb, 1);
    wgmma_wait<1>();
    promote(ta, 0);
    issue(ta, 2);
    wgmma_wait<1>();
    promote(tb, 1);
    issue(tc, 3);
    wgmma_wait<1>();
    promote(ta, 2);
    wgmma_wait<0>();
    promote(tc, 3);
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = fmaf(l[r], alpha, tc[32 + 2 * r]);
  }
  float out = 0.f;
  for (int i = 0; i < 128; ++i) out += o[i];
  return out + l[0] + l[1];
}

template <int Ctas>
__global__ void __launch_bounds__(128, Ctas) probe_256(int blocks, float* sink) {
  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  for (int i = threadIdx.x; i < kSmem / 4; i += blockDim.x) {
    reinterpret_cast<u32*>(smem)[i] = i >= 32768 / 4 ? 0x30303030u : 0x03030303u;
  }
  fence_proxy_async_shared();
  __syncthreads();
  const float out = block_loop_256((smem_u32(smem) + 1023) & ~1023u, blocks);
  if (out == 12345.f) sink[threadIdx.x] = out;
}

// TOPS of `warpgroups` warpgroups that each ran `blocks` blocks (2 · 64 · 128 · D · 2 operations a
// warpgroup and block) in `ms` milliseconds.
double block_tops(double warpgroups, int blocks, int d, double ms) {
  return warpgroups * blocks * (2.0 * 64 * 128 * d * 2) / (ms * 1e-3) / 1e12;
}

template <int Ctas>
double run_256(int sms, int blocks) {
  auto k = probe_256<Ctas>;
  PROBE_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  float* sink;
  PROBE_CHECK(cudaMalloc(&sink, 4096));
  const std::vector<float> ms = launch_times(7, [&] { k<<<Ctas * sms, 128, kSmem>>>(blocks, sink); });
  PROBE_CHECK(cudaFree(sink));
  const double tops = block_tops(double(Ctas) * sms, blocks, 256, ms[3]);
  std::printf("d256 %d CTA(s) per SM  %8.3f ms  %6.0f TOPS\n", Ctas, ms[3], tops);
  return tops;
}

// CTAs per SM in "ctas" mode: the single-warpgroup kernel's, 3 at D = 128 and 4 at D = 64.
constexpr int ctas_per_sm(int d) { return d == 64 ? 4 : 3; }

// Mode: 0 ctas, 1 wgs, 2 pingpong; in one CTA of 3 warpgroups, 3 each with its own copy of Q, K and V
// (wgs-private), 4 with its own Q and the others' K and V (wgs-kv-shared, as warpgroups sharing K/V
// copies would run). Modes 3 and 4 take kRegion bytes per warpgroup.
constexpr int kRegion = 52 * 1024;
constexpr int smem_of(int mode) { return mode >= 3 ? 3 * kRegion + 1024 : kSmem; }

template <int Mode, int V = kKernel, int D = 128>
__global__ void __launch_bounds__(Mode == 0 ? 128 : 384, Mode == 0 ? ctas_per_sm(D) : 1)
    probe(int blocks, int random, float* sink) {
  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  const int tid = threadIdx.x, n_wg = blockDim.x / 128, wg = tid / 128;
  constexpr int kFill = Mode >= 3 ? 3 * kRegion : kSmem;
  // Q and K int8, V e4m3: constants (3 and 0.5), or random bytes (V's with bits 3 and 7 clear, so
  // never NaN). The data sets how much the operands switch, and so the power the card draws and
  // the clock it holds under its cap.
  for (int i = tid; i < kFill / 4; i += blockDim.x) {
    u32 h = ((random == 2 ? i % (kRegion / 4) : i) + 1) * 2654435761u;  // random 2: each region the same
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    const bool is_v = i % (kRegion / 4) >= 32768 / 4;
    reinterpret_cast<u32*>(smem)[i] = !random ? (is_v ? 0x30303030u : 0x03030303u) : is_v ? h & 0x77777777u : h;
  }
  fence_proxy_async_shared();
  __syncthreads();
  const u32 s0 = (smem_u32(smem) + 1023) & ~1023u;
  const u32 s = Mode == 3 ? s0 + wg * kRegion : s0, sq = Mode >= 3 ? s0 + wg * kRegion + 16384 : s0 + 16384;
  float out;
  if (Mode == 2) {
    if (wg == n_wg - 1) named_barrier_arrive(1, 256);  // warpgroup 0 holds the token first
    out = block_loop<true>(s, wg, n_wg, blocks, sq);
    if (wg == 0) named_barrier_sync(1, 256);  // the last token passed, taken so none is left pending
  } else {
    out = block_loop<false, V, D>(s, wg, n_wg, blocks, sq);
  }
  if (out == 12345.f) sink[tid] = out;
}

// Median of 7 launches; 3 warpgroups per SM in each mode.
template <int Mode, int V = kKernel, int D = 128>
double run(const char* name, int sms, int blocks, int random = 0) {
  auto k = probe<Mode, V, D>;
  PROBE_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_of(Mode)));
  float* sink;
  PROBE_CHECK(cudaMalloc(&sink, 4096));
  const int per_sm = Mode == 0 ? ctas_per_sm(D) : 3;
  const int grid = Mode == 0 ? per_sm * sms : sms, threads = Mode == 0 ? 128 : 384;
  const std::vector<float> ms =
      launch_times(7, [&] { k<<<grid, threads, smem_of(Mode)>>>(blocks, random, sink); });
  PROBE_CHECK(cudaFree(sink));
  const double tops = block_tops(double(per_sm) * sms, blocks, D, ms[3]);
  std::printf("%-9s %s %8.3f ms  %6.0f TOPS\n", name, random ? "random  " : "constant", ms[3], tops);
  return tops;
}

// The kernel's numerics with its row sums, random operands, launched back to back for `seconds`
// (each launch ~7 ms): the rate the loop holds under the card's power cap over seconds, not only
// the ~50 ms of run() above. Prints the wall clock at the start (to line up with nvidia-smi
// samples), the first launches' TOPS after one warm-up launch, and the median of each second's
// launches.
template <int D>
void sustain(int sms, double seconds) {
  auto k = probe<0, kRowSum, D>;
  PROBE_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  float* sink;
  PROBE_CHECK(cudaMalloc(&sink, 4096));
  const int per_sm = ctas_per_sm(D), blocks = 4000;
  cudaEvent_t a, b;
  PROBE_CHECK(cudaEventCreate(&a));
  PROBE_CHECK(cudaEventCreate(&b));
  k<<<per_sm * sms, 128, kSmem>>>(blocks, 1, sink);  // warm-up
  PROBE_CHECK(cudaGetLastError());
  PROBE_CHECK(cudaDeviceSynchronize());
  std::printf("sustained D = %d from %.3f s (epoch)\n", D,
              std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> window;
  double elapsed = 0.0, next_report = 1.0;
  for (int launch = 0; elapsed < seconds; ++launch) {
    PROBE_CHECK(cudaEventRecord(a));
    k<<<per_sm * sms, 128, kSmem>>>(blocks, 1, sink);
    PROBE_CHECK(cudaGetLastError());
    PROBE_CHECK(cudaEventRecord(b));
    PROBE_CHECK(cudaEventSynchronize(b));
    float ms;
    PROBE_CHECK(cudaEventElapsedTime(&ms, a, b));
    if (launch < 3) std::printf("  launch %d: %6.0f TOPS\n", launch, block_tops(double(per_sm) * sms, blocks, D, ms));
    window.push_back(ms);
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= next_report) {
      std::sort(window.begin(), window.end());
      std::printf("  second %2.0f: %6.0f TOPS (median of %zu launches)\n", next_report,
                  block_tops(double(per_sm) * sms, blocks, D, window[window.size() / 2]), window.size());
      window.clear();
      next_report += 1.0;
    }
  }
  PROBE_CHECK(cudaEventDestroy(a));
  PROBE_CHECK(cudaEventDestroy(b));
  PROBE_CHECK(cudaFree(sink));
}

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop;
  PROBE_CHECK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  if (argc > 1 && std::string(argv[1]) == "sustained") {  // sustained SECONDS: D = 128, then 64
    const double seconds = argc > 2 ? std::atof(argv[2]) : 0.0;
    if (!(seconds > 0.0)) {
      std::fprintf(stderr, "usage: %s sustained SECONDS (a positive number of seconds per head dim)\n", argv[0]);
      return 2;
    }
    std::printf("%s, %d SMs\n", prop.name, sms);
    sustain<128>(sms, seconds);
    sustain<64>(sms, seconds);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "onecta") {  // one CTA of 3 warpgroups against 3 CTAs, by shared operands
    std::printf("%s, %d SMs; D = 128, 3 warpgroups per SM, 4000 blocks each, random operands\n", prop.name, sms);
    for (int round = 0; round < 2; ++round) {
      run<0, kRowSum>("ctas", sms, 4000, 1);
      run<1, kRowSum>("wgs", sms, 4000, 1);
      run<3, kRowSum>("wgs-priv", sms, 4000, 1);
      run<4, kRowSum>("wgs-kv", sms, 4000, 1);
      run<3, kRowSum>("wgs-priv=", sms, 4000, 2);
      run<4, kRowSum>("wgs-kv=", sms, 4000, 2);
    }
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "d256") {  // only the head-dim-256 single form, beside D = 128's
    std::printf("%s, %d SMs; D = 128 (3 CTAs per SM, 4000 blocks) and 256 (2000 blocks)\n", prop.name, sms);
    for (int round = 0; round < 2; ++round) {
      run<0, kRowSum>("d128 +row-sum", sms, 4000);
      run_256<2>(sms, 2000);
      run_256<1>(sms, 2000);
    }
    return 0;
  }
  std::printf("%s, %d SMs; D = 128, 3 warpgroups per SM, 4000 blocks each\n", prop.name, sms);
  for (int round = 0; round < 2; ++round) {
    run<0>("ctas", sms, 4000);
    run<1>("wgs", sms, 4000);
    run<2>("pingpong", sms, 4000);
  }
  std::printf("ablations of the block's numerics (3 CTAs per SM):\n");
  for (int round = 0; round < 2; ++round) {
    run<0, kKernel>("kernel", sms, 4000);
    run<0, kRowSum>("+row-sum", sms, 4000);
    run<0, kNoPromotion>("no-promo", sms, 4000);
    run<0, kFp8Qk>("fp8-qk", sms, 4000);
    run<0, kMmaOnly>("mma-only", sms, 4000);
  }
  std::printf("random operands (the card's clock under its power cap):\n");
  for (int round = 0; round < 2; ++round) {
    run<0, kKernel>("kernel", sms, 4000, 1);
    run<0, kMmaOnly>("mma-only", sms, 4000, 1);
    run<0, kKernel, 64>("kernel64", sms, 4000, 1);
  }
  std::printf("the same at D = 64 (4 CTAs per SM):\n");
  for (int round = 0; round < 2; ++round) {
    run<0, kKernel, 64>("kernel", sms, 4000);
    run<0, kRowSum, 64>("+row-sum", sms, 4000);
    run<0, kNoPromotion, 64>("no-promo", sms, 4000);
    run<0, kFp8Qk, 64>("fp8-qk", sms, 4000);
    run<0, kMmaOnly, 64>("mma-only", sms, 4000);
  }
  return 0;
}
