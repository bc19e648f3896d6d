// quant_bench.cpp — speed of the quantization kernels (GB/s against the card's copy bandwidth),
// cold compile time per kernel and warm load time from the SQLite cache.
//
// Usage: quant_bench [--json PATH] [--head-dim D] [--heads H]. Shapes as shared/DESIGN.md §3: B=4,
// H=32, D=128 unless given, fp16 HND, S = 1k..32k (the compile table is always D = 128). Inputs rotate over enough sets to exceed L2. "moved" counts every byte the kernels
// touch (a separate statistics pass reads K and V a second time); "min" counts each input read once
// and each output written once. Variants: "full" (int8 Q/K with K smoothing, FP8 V: the default),
// "qk_only" (int8 Q/K, nothing else), "precise" (two-term int8 Q/K with K smoothing, V left in
// fp16: what the precise mode runs); "full_sep" and "precise_sep" with QuantizeOptions::fused_stats
// off (the statistics as a separate pass). "fused" says whether the variant's call ran K, V and
// their statistics as one kernel (runtime/quantize.cpp says where it does not).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/bench_util.hpp"
#include "bench/device_fill.hpp"
#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/jit.hpp"
#include "runtime/quantize_plan.hpp"
#include "sagejit/quantize.hpp"

using namespace sagejit;
using sagejit::bench::Buffer;

namespace {

double nvrtc_startup_ms = 0;

nlohmann::json compile_times(const Arch& arch) {
  // A fresh database: the first request compiles (cold), a second Jit over it loads from disk (warm).
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("sagejit-bench-{}", std::random_device{}());
  const auto db = dir / "cache.sqlite3";
  std::vector<QuantSpec> specs = {
      {arch, QuantOp::quantize_q, DType::f16, 128, QuantType::int8, false},
      {arch, QuantOp::quantize_k, DType::f16, 128, QuantType::int8, true},
      {arch, QuantOp::channel_stats, DType::f16, 128, QuantType::int8, false},
      {arch, QuantOp::quantize_v, DType::f16, 128, QuantType::fp8_e4m3, false},
      {arch, QuantOp::quantize_kv, DType::f16, 128, QuantType::int8, true}};
  specs.back().with_v = true;
  nlohmann::json rows = nlohmann::json::array();
  {
    Jit cold(CubinStore::open(db));
    // NVRTC's own start-up (loading the library, its built-in headers) is paid once per process by
    // the first compile, whatever the kernel: time it apart so each kernel's figure is its own.
    const GeneratedUnit probe{"bench.nvrtc_startup", arch, "__global__ void probe(int* p) { *p = 1; }\n", "&probe"};
    nvrtc_startup_ms = cold.cubin(probe).ms;
    for (const auto& s : specs) {
      CubinResult r = cold.cubin(s.generate());
      rows.push_back({{"kernel", s.canonical_name()}, {"cold_compile_ms", r.ms}, {"registers", r.record.usage.registers}});
    }
  }
  Jit warm(CubinStore::open(db));
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    CubinSource source;
    warm.kernel(specs[i].generate(), &source);
    rows[i]["warm_load_ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    rows[i]["warm_source"] = std::string(name(source));
  }
  std::filesystem::remove_all(dir);
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int head_dim = 128, heads = 32;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--json") json_path = argv[i + 1];
    if (std::string(argv[i]) == "--head-dim") head_dim = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--heads") heads = std::stoi(argv[i + 1]);
  }
  ensure_current_context();
  const DeviceInfo dev = query_device(current_device_ordinal());
  CUstream stream;
  SAGEJIT_CU(cuStreamCreate, &stream, CU_STREAM_NON_BLOCKING);

  nlohmann::json out;
  out["device"] = dev.name;
  out["arch"] = dev.arch().name();
  out["compile"] = compile_times(dev.arch());
  out["nvrtc_startup_ms"] = nvrtc_startup_ms;

  // The ceiling: a large device-to-device copy, bytes read + written.
  {
    Buffer a(1ull << 30), b(1ull << 30);
    bench::fill_random_f16(a.ptr(), a.bytes() / 2, 1, stream);
    const double ms = bench::median_ms(stream, 3, 20, [&](int) {
      SAGEJIT_CU(cuMemcpyDtoDAsync, b.ptr(), a.ptr(), a.bytes(), stream);
    });
    out["copy_gbps"] = 2.0 * a.bytes() / ms / 1e6;
  }
  const double copy = out["copy_gbps"];

  const int B = 4, H = heads, D = head_dim;
  out["shape"] = {{"batch", B}, {"heads", H}, {"head_dim", D}};
  nlohmann::json rows = nlohmann::json::array();
  for (int S : {1024, 2048, 4096, 8192, 16384, 32768}) {
    const std::size_t bytes = std::size_t(B) * H * S * D * 2;
    const int sets = std::max(2, int((200ull << 20) / (3 * bytes)) + 1);
    std::vector<std::unique_ptr<Buffer>> inputs;
    for (int i = 0; i < 3 * sets; ++i) {
      inputs.push_back(std::make_unique<Buffer>(bytes));
      bench::fill_random_f16(inputs.back()->ptr(), bytes / 2, 100 + i, stream);
    }
    auto ref = [&](int set, int which) {
      return TensorRef::contiguous(inputs[3 * set + which]->get(), DType::f16, Layout::hnd, B, H, S, D);
    };
    nlohmann::json row = {{"seq", S}};
    struct Variant {
      const char* name;
      bool smooth_k, quantize_v;
      QuantType qk;
      bool fused_stats;
    };
    for (Variant variant : {Variant{"full", true, true, QuantType::int8, true},
                            Variant{"full_sep", true, true, QuantType::int8, false},
                            Variant{"qk_only", false, false, QuantType::int8, true},
                            Variant{"precise", true, false, QuantType::int8x2, true},
                            Variant{"precise_sep", true, false, QuantType::int8x2, false}}) {
      QuantizeOptions o;
      o.smooth_k = variant.smooth_k;
      o.quantize_v = variant.quantize_v;
      o.qk_type = variant.qk;
      o.fused_stats = variant.fused_stats;
      const bool fused = runs_fused_stats(plan_quantize(ref(0, 0), ref(0, 1), ref(0, 2), o, dev.arch()), o);
      const std::size_t ws_bytes = quantize_workspace_bytes(ref(0, 0), ref(0, 1), ref(0, 2), o);
      Buffer ws(ws_bytes);
      const double ms = bench::median_ms(stream, 3, 30, [&](int i) {
        const int set = i % sets;
        quantize(ref(set, 0), ref(set, 1), ref(set, 2), o, ws.get(), ws.bytes(), stream);
      });
      const double elements = double(B) * H * S * D;
      // Minimal: read Q, K (and V) once as fp16, write 1 byte per element each (Q/K: 2 bytes with two
      // terms).
      const double qk_bytes = qk_storage_bits(variant.qk) / 8.0;
      const double min_bytes = elements * (2 * (2 + qk_bytes) + (variant.quantize_v ? 3 : 0));
      // Moved: plus a separate statistics pass re-reading K (smoothing) and V (FP8 scale).
      const double moved =
          min_bytes + (fused ? 0.0 : elements * 2 * ((variant.smooth_k ? 1 : 0) + (variant.quantize_v ? 1 : 0)));
      row[variant.name] = {{"ms", ms}, {"min_gbps", min_bytes / ms / 1e6}, {"moved_gbps", moved / ms / 1e6},
                           {"moved_pct_of_copy", 100.0 * moved / ms / 1e6 / copy}, {"fused", fused}};
    }
    rows.push_back(row);
  }
  out["quantize"] = rows;

  fmt::print("quantization on {} ({}), copy bandwidth {:.0f} GB/s; B={} H={} D={}\n", dev.name, dev.arch().name(),
             copy, B, H, D);
  fmt::print("first compile in the process (NVRTC start-up, trivial kernel): {:.1f} ms\n", nvrtc_startup_ms);
  fmt::print("{:<44} {:>14} {:>12} {:>8}\n", "kernel", "cold compile", "warm load", "regs");
  for (const auto& r : out["compile"]) {
    fmt::print("{:<44} {:>11.1f} ms {:>9.2f} ms {:>8}\n", r["kernel"].get<std::string>(), r["cold_compile_ms"].get<double>(),
               r["warm_load_ms"].get<double>(), r["registers"].get<int>());
  }
  // ms, min GB/s and % of copy (moved bytes) per variant; * marks a call that ran the fused kernel.
  const char* const variants[] = {"full", "full_sep", "qk_only", "precise", "precise_sep"};
  fmt::print("{:>6}", "S");
  for (const char* v : variants) fmt::print(" | {:>11} ms {:>5} {:>4}", v, "min", "%cp");
  fmt::print("\n");
  for (const auto& r : rows) {
    fmt::print("{:>6}", r["seq"].get<int>());
    for (const char* v : variants) {
      const auto& f = r[v];
      fmt::print(" | {:>1}{:>13.3f} {:>5.0f} {:>3.0f}%", f["fused"].get<bool>() ? "*" : "", f["ms"].get<double>(),
                 f["min_gbps"].get<double>(), f["moved_pct_of_copy"].get<double>());
    }
    fmt::print("\n");
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
