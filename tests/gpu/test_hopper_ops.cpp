// GPU tests of templates/hopper_ops.cuh, the sm_90a parts of the Hopper attention kernel: each pins
// one layout the kernel relies on against a host computation, so a wrong descriptor, swizzle, fragment
// or tensor map shows up here as a wrong number rather than as a slightly-off attention output.
//   (a) int8 GEMM tile (QKᵀ): A 64×128 and B N×128 int8, K-major (the layout of quantized Q and K),
//       loaded by TMA in every swizzle mode, multiplied by wgmma s8 m64nNk32 from shared memory;
//       every accumulator is written where the documented layout says it lives: exact.
//   (b) e4m3 GEMM (P·V): P in the f32 accumulator layout of QKᵀ, packed to the A fragment with
//       pack_p_e4m3 (no shuffles), V as N×128 e4m3 K-major with quant_layout.cuh's token permutation,
//       multiplied by wgmma e4m3 m64nNk32: equal to the host product in natural token order.
//   (c) TMA round trip of 3-D and 4-D tiles with out-of-bounds zero fill, over one mbarrier whose phase
//       flips tile after tile, and TMA stores that clip at the tensor's end.
//   (d) f16 / bf16 GEMM (the 16-bit P·V): P packed with pack_p_f16, V as stored ([keys × N], the
//       MN-major B operand) in 64-channel TMA boxes with 128B swizzle (32-channel, 64B at N = 96): equal
//       to the host product.
// They run only on sm_90 (the kernels are sm_90a code) and report skipped elsewhere.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/device.hpp"
#include "runtime/jit.hpp"
#include "runtime/tensor_map.hpp"
#include "templates/quant_layout.cuh"
#include "tests/gpu/support.hpp"

using namespace sagejit;

namespace {


// The test kernels. One source; each test instantiates the template it needs by name expression.
const char* const kKernels = R"cuda(
#include "hopper_ops.cuh"

using namespace sagejit::kernels;
using namespace sagejit::kernels::hopper;

// The descriptor of k-step `s` (32 bytes of K) of a K-major tile of `rows` rows and 128 bytes of K,
// stored as K / W boxes of [rows × W bytes] one after another (what W-byte-wide TMA boxes write).
// W = 16 is the unswizzled layout: each box is a column of core matrices.
template <int W>
__device__ __forceinline__ u64 tile_desc(u32 base, int rows, int s) {
  const int box = (32 * s) / W, offset = (32 * s) % W;
  const u32 addr = base + box * rows * W + offset;
  if constexpr (W == 16) {
    return make_smem_desc(addr, Swizzle::none, /*lbo: next core matrix along K*/ rows * 16,
                          /*sbo: next 8 rows*/ 128);
  } else {
    return make_kmajor_desc(addr, swizzle_of_span(W));
  }
}

// (a) out[64][N] = A[64][128] · B[N][128]ᵀ, int8, one warpgroup.
template <int N, int W>
__global__ void __launch_bounds__(128, 1)
    hopper_test_gemm_s8(const __grid_constant__ TmaDescriptor tma_a,
                        const __grid_constant__ TmaDescriptor tma_b, int* out) {
  constexpr int K = 128, kBoxes = K / W;
  __shared__ u64 full;
  extern __shared__ u8 smem[];
  // Swizzled tiles must start on their swizzle repeat (at most 1024 bytes): align by hand.
  const u32 base_a = (smem_u32(smem) + 1023) & ~1023u;
  const u32 base_b = base_a + 64 * K;
  const u32 bar = smem_u32(&full);
  const int tid = threadIdx.x;
  if (tid == 0) {
    prefetch_tma_descriptor(tma_a);
    prefetch_tma_descriptor(tma_b);
    mbarrier_init(bar, 1);
    fence_barrier_init();
  }
  __syncthreads();
  if (tid == 0) {
    mbarrier_arrive_expect_tx(bar, (64 + N) * K);
    for (int c = 0; c < kBoxes; ++c) {
      tma_load_2d(base_a + c * 64 * W, tma_a, bar, c * W, 0);
      tma_load_2d(base_b + c * N * W, tma_b, bar, c * W, 0);
    }
  }
  mbarrier_wait_parity(bar, 0);

  i32 acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = 0;
  fence_operands(acc);  // materialize the zeros before the fence, not between the wgmmas
  wgmma_fence();
#pragma unroll
  for (int s = 0; s < K / 32; ++s) {
    wgmma_s8_ss<N>(acc, tile_desc<W>(base_a, 64, s), tile_desc<W>(base_b, N, s), s > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  fence_operands(acc);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) out[acc_row(tid, i) * N + acc_col(tid, i)] = acc[i];
}

// One mbarrier for a test kernel's loads, initialized by thread 0 before every thread goes on.
__device__ __forceinline__ void init_one_barrier(u32 bar, int tid) {
  if (tid == 0) {
    mbarrier_init(bar, 1);
    fence_barrier_init();
  }
  __syncthreads();
}

// The scores P[64][K] as QKᵀ's m64nK accumulators of thread `tid` would hold them.
template <int K>
__device__ __forceinline__ void scores_in_acc_layout(const float* p, int tid, float (&s)[K / 2]) {
#pragma unroll
  for (int i = 0; i < K / 2; ++i) s[i] = p[acc_row(tid, i) * K + acc_col(tid, i)];
}

// (b) out[64][N] = P[64][128] · V[128][N]: P read in the accumulator layout a QKᵀ tile of 128 keys
// would have, packed with pack_p_e4m3; V given as Vt[N][128] e4m3, token-permuted, 128B swizzle.
template <int N>
__global__ void __launch_bounds__(128, 1)
    hopper_test_pv_e4m3(const float* p, const __grid_constant__ TmaDescriptor tma_v, float* out) {
  constexpr int K = 128;
  __shared__ u64 full;
  extern __shared__ u8 smem[];
  const u32 base_v = (smem_u32(smem) + 1023) & ~1023u;
  const u32 bar = smem_u32(&full);
  const int tid = threadIdx.x;
  init_one_barrier(bar, tid);
  if (tid == 0) {
    mbarrier_arrive_expect_tx(bar, N * K);
    tma_load_2d(base_v, tma_v, bar, 0, 0);
  }
  float s[K / 2];
  scores_in_acc_layout<K>(p, tid, s);
  u32 a[K / 32][4];
#pragma unroll
  for (int k = 0; k < K / 32; ++k) pack_p_e4m3(s, k, a[k]);

  float acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = 0.0f;
  fence_operands(acc);
  fence_operands(a[0]), fence_operands(a[1]), fence_operands(a[2]), fence_operands(a[3]);
  mbarrier_wait_parity(bar, 0);
  wgmma_fence();
#pragma unroll
  for (int k = 0; k < K / 32; ++k) {
    wgmma_e4m3_rs<N>(acc, a[k], desc_advance(make_kmajor_desc(base_v, Swizzle::b128), 32 * k), k > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  fence_operands(acc);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) out[acc_row(tid, i) * N + acc_col(tid, i)] = acc[i];
}

// (d) out[64][N] = P[64][128] · V[128][N] in f16: P read in the accumulator layout, packed with
// pack_p_f16; V as stored, [128 keys × N] f16 (MN-major for wgmma), loaded as N / 64 TMA boxes of
// [128 keys × 64 channels] with 128B swizzle, one after another.
template <int N, bool Bf16>
__global__ void __launch_bounds__(128, 1)
    hopper_test_pv_f16(const float* p, const __grid_constant__ TmaDescriptor tma_v, float* out) {
  // Boxes of 64 channels (128-byte rows, 128B swizzle), or 32 (64-byte rows, 64B swizzle) when 64
  // does not divide N.
  constexpr int K = 128, kChan = N % 64 == 0 ? 64 : 32, kRowBytes = 2 * kChan, kBoxBytes = K * kRowBytes;
  constexpr Swizzle kSwizzle = swizzle_of_span(kRowBytes);
  __shared__ u64 full;
  extern __shared__ u8 smem[];
  const u32 base_v = (smem_u32(smem) + 1023) & ~1023u;
  const u32 bar = smem_u32(&full);
  const int tid = threadIdx.x;
  init_one_barrier(bar, tid);
  if (tid == 0) {
    mbarrier_arrive_expect_tx(bar, N * K * 2);
    for (int b = 0; b < N / kChan; ++b) tma_load_2d(base_v + b * kBoxBytes, tma_v, bar, kChan * b, 0);
  }
  float s[K / 2];
  scores_in_acc_layout<K>(p, tid, s);
  u32 a[K / 16][4];
#pragma unroll
  for (int k = 0; k < K / 16; ++k) pack_p_f16<Bf16>(s, k, a[k]);

  float acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = 0.0f;
  fence_operands(acc);
#pragma unroll
  for (int k = 0; k < K / 16; ++k) fence_operands(a[k]);
  mbarrier_wait_parity(bar, 0);
  wgmma_fence();
#pragma unroll
  for (int k = 0; k < K / 16; ++k) {
    wgmma_f16_rs_bmn<N, Bf16>(acc, a[k], desc_advance(make_mn_major_desc(base_v, kSwizzle, kBoxBytes), 16 * kRowBytes * k),
                              k > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  fence_operands(acc);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) out[acc_row(tid, i) * N + acc_col(tid, i)] = acc[i];
}

// (c) For each tile t: TMA-load the box at rows starts[t % n_starts] of (head, batch) into shared
// memory (one mbarrier, phase t & 1), copy it verbatim to raw[t], and TMA-store it back through
// `store_map` when its start is not negative. Box: 64 rows × 64 u16 (8 KiB).
template <int Rank>
__global__ void __launch_bounds__(128, 1)
    hopper_test_tma_roundtrip(const __grid_constant__ TmaDescriptor load_map,
                              const __grid_constant__ TmaDescriptor store_map, const int* starts,
                              int n_starts, int heads, int batches, u32* raw) {
  constexpr int kBoxBytes = 64 * 64 * 2;
  __shared__ u64 full;
  __shared__ alignas(128) u32 tile[kBoxBytes / 4];
  const u32 bar = smem_u32(&full), dst = smem_u32(tile);
  const int tid = threadIdx.x;
  if (tid == 0) {
    mbarrier_init(bar, 1);
    fence_barrier_init();
  }
  __syncthreads();
  const int tiles = n_starts * heads * batches;
  for (int t = 0; t < tiles; ++t) {
    const int start = starts[t % n_starts], h = (t / n_starts) % heads, b = t / (n_starts * heads);
    if (tid == 0) {
      mbarrier_arrive_expect_tx(bar, kBoxBytes);  // the whole box, out-of-bounds rows included
      if constexpr (Rank == 3) tma_load_3d(dst, load_map, bar, 0, start, h);
      else tma_load_4d(dst, load_map, bar, 0, start, h, b);
    }
    mbarrier_wait_parity(bar, t & 1);
    for (int i = tid; i < kBoxBytes / 4; i += blockDim.x) raw[t * (kBoxBytes / 4) + i] = tile[i];
    if (tid == 0 && start >= 0) {
      if constexpr (Rank == 3) tma_store_3d(store_map, dst, 0, start, h);
      else tma_store_4d(store_map, dst, 0, start, h, b);
      tma_store_commit();
      tma_store_wait_read<0>();  // the next load overwrites the tile
    }
    __syncthreads();             // every thread has read the tile
    if (tid == 0) fence_proxy_async_shared();
  }
  if (tid == 0) tma_store_wait<0>();
}
)cuda";

const Kernel& test_kernel(const std::string& name_expression) {
  const Arch arch = query_device(current_device_ordinal()).arch();
  const GeneratedUnit unit{"test.hopper_ops." + name_expression, arch, kKernels, "&" + name_expression};
  return default_jit().kernel(unit);
}

// A 2-D to 4-D row-major tensor map: dims innermost first, strides in bytes for dims 1.., zero fill
// outside the tensor.
CUtensorMap tensor_map(CUtensorMapDataType type, CUdeviceptr base, std::vector<std::uint64_t> dims,
                       std::vector<std::uint64_t> byte_strides, std::vector<std::uint32_t> box,
                       CUtensorMapSwizzle swizzle) {
  CUtensorMap map{};
  std::vector<std::uint32_t> element_strides(dims.size(), 1);
  SAGEJIT_CU(cuTensorMapEncodeTiled, &map, type, static_cast<std::uint32_t>(dims.size()),
             reinterpret_cast<void*>(base), dims.data(), byte_strides.data(), box.data(),
             element_strides.data(), CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
             CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return map;
}

// e4m3 (1-4-3, bias 7, no infinities, S.1111.111 is NaN) decoded exactly.
float decode_e4m3(std::uint8_t b) {
  const int sign = b >> 7, exponent = (b >> 3) & 15, mantissa = b & 7;
  if (exponent == 15 && mantissa == 7) return NAN;
  const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                        : std::ldexp(1.0f + mantissa / 8.0f, exponent - 7);
  return sign ? -magnitude : magnitude;
}

// The e4m3 codes of the multiples of 1/4 in [-2, 2]. Any 128-term dot product of them is a multiple
// of 1/16 of magnitude <= 512, so it and every partial sum need at most 14 significant bits: the
// tensor core's reduced-precision FP8 accumulation (about 14 bits kept) is then exact, whatever its
// order, and the test can demand equality with the host sum.
std::vector<std::uint8_t> exact_e4m3_codes() {
  std::vector<std::uint8_t> codes;
  for (int b = 0; b < 256; ++b) {
    const float v = decode_e4m3(static_cast<std::uint8_t>(b));
    if (!std::isnan(v) && std::fabs(v) <= 2.0f && v * 4 == std::floor(v * 4) && !(v == 0 && b != 0)) {
      codes.push_back(static_cast<std::uint8_t>(b));
    }
  }
  return codes;
}

void run_gemm_s8(int n, int w) {
  CAPTURE(n);
  CAPTURE(w);
  ensure_current_context();
  constexpr int M = 64, K = 128;
  std::mt19937 rng(1234 + n + w);
  std::uniform_int_distribution<int> dist(-128, 127);  // the full range, -128 included
  std::vector<std::int8_t> a(M * K), b(static_cast<std::size_t>(n) * K);
  for (auto& x : a) x = static_cast<std::int8_t>(dist(rng));
  for (auto& x : b) x = static_cast<std::int8_t>(dist(rng));
  DeviceBuffer da(a.size()), db(b.size()), dout(static_cast<std::size_t>(M) * n * 4);
  da.upload(a), db.upload(b), dout.poison();

  // Boxes W bytes wide (the swizzle span; 16 = one core-matrix row for no swizzle), all rows.
  CUtensorMap map_a = tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT8, da.ptr(), {K, M}, {K},
                                 {static_cast<std::uint32_t>(w), M}, tensor_map_swizzle(w));
  CUtensorMap map_b = tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT8, db.ptr(), {K, static_cast<std::uint64_t>(n)}, {K},
                                 {static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(n)}, tensor_map_swizzle(w));
  const Kernel& kernel = test_kernel(fmt::format("hopper_test_gemm_s8<{}, {}>", n, w));
  CUdeviceptr out = dout.ptr();
  void* args[] = {&map_a, &map_b, &out};
  kernel.launch({{1, 1, 1}, {128, 1, 1}, static_cast<unsigned>((M + n) * K + 1024)}, nullptr, args);
  SAGEJIT_CU(cuCtxSynchronize);

  const std::vector<std::int32_t> got = dout.download<std::int32_t>(static_cast<std::size_t>(M) * n);
  int wrong = 0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < n; ++j) {
      std::int32_t want = 0;
      for (int k = 0; k < K; ++k) want += a[i * K + k] * b[j * K + k];
      if (got[i * n + j] != want && wrong++ < 5) {
        MESSAGE(fmt::format("out[{}][{}] = {}, want {}", i, j, got[i * n + j], want));
      }
    }
  }
  CHECK(wrong == 0);
}

void run_pv_e4m3(int n) {
  CAPTURE(n);
  ensure_current_context();
  constexpr int M = 64, K = 128;
  const std::vector<std::uint8_t> codes = exact_e4m3_codes();
  std::mt19937 rng(99 + n);
  std::uniform_int_distribution<std::size_t> pick(0, codes.size() - 1);
  std::vector<float> p(M * K);
  for (auto& x : p) x = decode_e4m3(codes[pick(rng)]);  // exactly representable: cvt is exact
  std::vector<std::uint8_t> v(static_cast<std::size_t>(K) * n);  // logical V[token][channel]
  for (auto& x : v) x = codes[pick(rng)];
  // Vt[channel][position]: position p of each 16-key group holds token v_token_at(p).
  std::vector<std::uint8_t> vt(static_cast<std::size_t>(n) * K);
  for (int c = 0; c < n; ++c) {
    for (int pos = 0; pos < K; ++pos) vt[c * K + pos] = v[(16 * (pos / 16) + layout::v_token_at(pos % 16)) * n + c];
  }
  DeviceBuffer dp(p.size() * 4), dv(vt.size()), dout(static_cast<std::size_t>(M) * n * 4);
  dp.upload(p), dv.upload(vt), dout.poison();
  CUtensorMap map_v = tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT8, dv.ptr(), {K, static_cast<std::uint64_t>(n)}, {K},
                                 {K, static_cast<std::uint32_t>(n)}, CU_TENSOR_MAP_SWIZZLE_128B);
  const Kernel& kernel = test_kernel(fmt::format("hopper_test_pv_e4m3<{}>", n));
  CUdeviceptr pp = dp.ptr(), out = dout.ptr();
  void* args[] = {&pp, &map_v, &out};
  kernel.launch({{1, 1, 1}, {128, 1, 1}, static_cast<unsigned>(n * K + 1024)}, nullptr, args);
  SAGEJIT_CU(cuCtxSynchronize);

  const std::vector<float> got = dout.download<float>(static_cast<std::size_t>(M) * n);
  int wrong = 0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < n; ++j) {
      double want = 0;  // natural token order: the permutation must cancel
      for (int k = 0; k < K; ++k) want += static_cast<double>(p[i * K + k]) * decode_e4m3(v[k * n + j]);
      if (got[i * n + j] != static_cast<float>(want) && wrong++ < 5) {
        MESSAGE(fmt::format("out[{}][{}] = {}, want {}", i, j, got[i * n + j], want));
      }
    }
  }
  CHECK(wrong == 0);
}

// f16 bits of a float that f16 holds exactly (normal numbers and zero only).
std::uint16_t f16_bits(float x) {
  if (x == 0) return 0;
  int e = 0;
  const float m = std::frexp(std::fabs(x), &e);  // x = m · 2^e, m in [0.5, 1)
  const auto mantissa = static_cast<std::uint16_t>(std::lround((m * 2 - 1) * 1024));
  return static_cast<std::uint16_t>((x < 0 ? 0x8000 : 0) | ((e - 1 + 15) << 10) | mantissa);
}

// bf16 bits of the same values (8 mantissa bits hold every multiple of 1/4 in [-2, 2]).
std::uint16_t bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<std::uint16_t>(u >> 16);
}

void run_pv_f16(int n, bool bf16) {
  CAPTURE(n);
  CAPTURE(bf16);
  ensure_current_context();
  constexpr int M = 64, K = 128;
  // Multiples of 1/4 in [-2, 2]: every product and partial sum is exact in f32.
  std::mt19937 rng(77 + n);
  std::uniform_int_distribution<int> quarter(-8, 8);
  std::vector<float> p(M * K), v(static_cast<std::size_t>(K) * n);  // v[token][channel]
  for (auto& x : p) x = quarter(rng) / 4.0f;
  for (auto& x : v) x = quarter(rng) / 4.0f;
  std::vector<std::uint16_t> vbits(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) vbits[i] = bf16 ? bf16_bits(v[i]) : f16_bits(v[i]);
  DeviceBuffer dp(p.size() * 4), dv(vbits.size() * 2), dout(static_cast<std::size_t>(M) * n * 4);
  dp.upload(p), dv.upload(vbits), dout.poison();
  const std::uint32_t chan = n % 64 == 0 ? 64 : 32;  // as the kernel's boxes
  CUtensorMap map_v = tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT16, dv.ptr(), {static_cast<std::uint64_t>(n), K},
                                 {static_cast<std::uint64_t>(n) * 2}, {chan, K},
                                 tensor_map_swizzle(static_cast<int>(chan) * 2));
  const Kernel& kernel = test_kernel(fmt::format("hopper_test_pv_f16<{}, {}>", n, bf16 ? "true" : "false"));
  CUdeviceptr pp = dp.ptr(), out = dout.ptr();
  void* args[] = {&pp, &map_v, &out};
  kernel.launch({{1, 1, 1}, {128, 1, 1}, static_cast<unsigned>(n * K * 2 + 1024)}, nullptr, args);
  SAGEJIT_CU(cuCtxSynchronize);

  const std::vector<float> got = dout.download<float>(static_cast<std::size_t>(M) * n);
  int wrong = 0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int k = 0; k < K; ++k) want += static_cast<double>(p[i * K + k]) * v[k * n + j];
      if (got[i * n + j] != static_cast<float>(want) && wrong++ < 5) {
        MESSAGE(fmt::format("out[{}][{}] = {}, want {}", i, j, got[i * n + j], want));
      }
    }
  }
  CHECK(wrong == 0);
}

void run_tma_roundtrip(int rank) {
  CAPTURE(rank);
  ensure_current_context();
  constexpr int S = 100, D = 64, kBoxRows = 64;
  const int heads = 3, batches = rank == 4 ? 2 : 1;
  const std::vector<int> starts = {0, 64, -16};  // in bounds; 28 rows past the end; 16 rows before
  const std::size_t elems = static_cast<std::size_t>(batches) * heads * S * D;
  std::vector<std::uint16_t> in(elems);
  for (std::size_t i = 0; i < elems; ++i) in[i] = static_cast<std::uint16_t>(1 + i * 7919 % 65521);  // never 0
  const int tiles = static_cast<int>(starts.size()) * heads * batches;
  const std::size_t box_elems = kBoxRows * D, guard = 4096;
  DeviceBuffer din(elems * 2), dout(elems * 2 + guard), draw(tiles * box_elems * 2), dstarts(starts.size() * 4);
  din.upload(in), dstarts.upload(starts), dout.poison(), draw.poison();

  std::vector<std::uint64_t> dims = {D, S, static_cast<std::uint64_t>(heads)};
  std::vector<std::uint64_t> strides = {D * 2, static_cast<std::uint64_t>(S) * D * 2};
  std::vector<std::uint32_t> box = {D, kBoxRows, 1};
  if (rank == 4) {
    dims.push_back(batches);
    strides.push_back(static_cast<std::uint64_t>(heads) * S * D * 2);
    box.push_back(1);
  }
  CUtensorMap load_map = tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT16, din.ptr(), dims, strides, box,
                                    CU_TENSOR_MAP_SWIZZLE_NONE);
  CUtensorMap store_map = tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT16, dout.ptr(), dims, strides, box,
                                     CU_TENSOR_MAP_SWIZZLE_NONE);
  const Kernel& kernel = test_kernel(fmt::format("hopper_test_tma_roundtrip<{}>", rank));
  CUdeviceptr pstarts = dstarts.ptr(), raw = draw.ptr();
  int n_starts = static_cast<int>(starts.size()), h = heads, b = batches;
  void* args[] = {&load_map, &store_map, &pstarts, &n_starts, &h, &b, &raw};
  kernel.launch({{1, 1, 1}, {128, 1, 1}, 0}, nullptr, args);
  SAGEJIT_CU(cuCtxSynchronize);

  // Loads: in-bounds rows verbatim, rows outside [0, S) zero.
  const std::vector<std::uint16_t> got_raw = draw.download<std::uint16_t>(tiles * box_elems);
  int wrong = 0;
  for (int t = 0; t < tiles; ++t) {
    const int start = starts[t % starts.size()], hh = (t / n_starts) % heads, bb = t / (n_starts * heads);
    for (int r = 0; r < kBoxRows; ++r) {
      const int s = start + r;
      for (int d = 0; d < D; ++d) {
        const std::uint16_t want = s >= 0 && s < S ? in[((static_cast<std::size_t>(bb) * heads + hh) * S + s) * D + d] : 0;
        if (got_raw[t * box_elems + r * D + d] != want && wrong++ < 5) {
          MESSAGE(fmt::format("tile {} row {} col {}: {}, want {}", t, r, d, got_raw[t * box_elems + r * D + d], want));
        }
      }
    }
  }
  CHECK(wrong == 0);
  // Stores: the tensor rebuilt exactly, nothing written past its end.
  const std::vector<std::uint16_t> got_out = dout.download<std::uint16_t>(elems);
  CHECK(got_out == in);
  const std::vector<std::uint8_t> tail = dout.download<std::uint8_t>(guard, elems * 2);
  CHECK(std::count(tail.begin(), tail.end(), std::uint8_t{0xFF}) == static_cast<long>(guard));
}

}  // namespace

TEST_CASE("hopper: wgmma s8 from TMA-loaded K-major tiles matches a host GEMM exactly" * test::needs_hopper()) {
  for (int n : {64, 128, 256}) run_gemm_s8(n, 128);
  for (int w : {64, 32, 16}) run_gemm_s8(128, w);  // 64B, 32B swizzle; 16 = no swizzle
}

TEST_CASE("hopper: wgmma e4m3 with P from accumulator registers and token-permuted V is exact" * test::needs_hopper()) {
  for (int n : {64, 96, 128, 256}) run_pv_e4m3(n);
}

TEST_CASE("hopper: wgmma f16 with P from accumulator registers and MN-major V (as stored) is exact" *
          test::needs_hopper()) {
  for (int n : {64, 96, 128, 256}) run_pv_f16(n, false);  // 96: 32-channel boxes, 64B swizzle
  for (int n : {96, 128, 256}) run_pv_f16(n, true);       // bf16 (bf16 inputs' P·V)
}

TEST_CASE("hopper: TMA 3-D and 4-D tiles fill zeros outside the tensor and stores clip" * test::needs_hopper()) {
  run_tma_roundtrip(3);
  run_tma_roundtrip(4);
}
