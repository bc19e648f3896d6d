// tuner.cpp — parallel compiles, rotated event timing, and storing a tuning run.
#include "autotune/tuner.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "autotune/records.hpp"
#include "bench/device_fill.hpp"  // the pseudo-random fill the benchmarks use (header-only)
#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/settings.hpp"
#include "sagejit/attention.hpp"

namespace sagejit {
namespace {

constexpr int kBatchRuns = 10;

// Options a timing loop cannot run with, refused before anything is launched.
void check_timing(const TimingOptions& o) {
  if (!std::isfinite(o.warmup_ms)) {
    throw InvalidArgument("warmup_ms", fmt::format("a finite number of milliseconds (got {})", o.warmup_ms));
  }
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// One copy of the inputs and output, and the stream whose workspace holds its quantized form.
struct InputSet {
  std::unique_ptr<DeviceBuffer> q, k, v, o;
  CUstream stream = nullptr;
};

// Streams are kept for the life of the process (per context): each owns a workspace that
// runtime/workspace keeps as long, so fresh streams per tuning run would leak workspaces.
CUstream pooled_stream(int index) {
  static std::mutex mutex;
  static std::map<std::pair<CUcontext, int>, CUstream> pool;
  const CUcontext ctx = ensure_current_context();
  std::lock_guard lock(mutex);
  auto& s = pool[{ctx, index}];
  if (!s) SAGEJIT_CU(cuStreamCreate, &s, CU_STREAM_NON_BLOCKING);
  return s;
}

std::vector<InputSet> make_inputs(const Problem& p, int max_sets) {
  const auto q_elems = std::size_t(p.batch) * p.heads_q * p.seq_q * p.head_dim;
  const auto kv_elems = std::size_t(p.batch) * p.heads_kv * p.seq_kv * p.head_dim;
  // What the attention kernel reads per call: Q and K in 4, 8 or 16 bits (int8x2), V in 8 (fp8) or 16
  // bits, O written.
  const std::size_t qk_bytes = std::max(1, qk_storage_bits(p.qk) / 8);
  const std::size_t touched = (q_elems + kv_elems) * qk_bytes + kv_elems * 2 + q_elems * 2;
  const std::size_t l2 = static_cast<std::size_t>(std::max(current_device_info().l2_bytes, 1 << 20));
  const int sets = static_cast<int>(std::clamp<std::size_t>((2 * l2 + touched - 1) / std::max<std::size_t>(touched, 1),
                                                            1, static_cast<std::size_t>(std::max(1, max_sets))));
  std::vector<InputSet> inputs(sets);
  for (int i = 0; i < sets; ++i) {
    InputSet& s = inputs[i];
    s.stream = pooled_stream(i);
    s.q = std::make_unique<DeviceBuffer>(q_elems * 2);
    s.k = std::make_unique<DeviceBuffer>(kv_elems * 2);
    s.v = std::make_unique<DeviceBuffer>(kv_elems * 2);
    s.o = std::make_unique<DeviceBuffer>(q_elems * 2);
    bench::fill_random_f16(s.q->ptr(), q_elems, 1000 + 3 * i, s.stream);
    bench::fill_random_f16(s.k->ptr(), kv_elems, 1001 + 3 * i, s.stream);
    bench::fill_random_f16(s.v->ptr(), kv_elems, 1002 + 3 * i, s.stream);
  }
  for (const InputSet& s : inputs) SAGEJIT_CU(cuStreamSynchronize, s.stream);
  return inputs;
}

AttentionOptions options_for(const Problem& p, const AttnSpec& spec) {
  AttentionOptions o;
  o.mask = p.mask;
  o.qk = p.qk;
  o.pv = spec.quant.pv;  // the spec's, so the forced spec is exactly the candidate
  o.granularity = p.granularity;
  o.smooth_q = p.smooth_q;
  o.smooth_k = p.smooth_k;
  o.family = spec.family;
  o.tile = spec.tile;
  return o;
}

// RAII pair of events.
struct Events {
  CUevent start = nullptr, stop = nullptr;
  Events() {
    SAGEJIT_CU(cuEventCreate, &start, CU_EVENT_DEFAULT);
    SAGEJIT_CU(cuEventCreate, &stop, CU_EVENT_DEFAULT);
  }
  ~Events() {
    driver().cuEventDestroy(start);
    driver().cuEventDestroy(stop);
  }
};

Timing time_on(const Problem& p, const AttnSpec& spec, const TimingOptions& o, std::vector<InputSet>& inputs,
               double give_up_ms) {
  const auto view = [&](const DeviceBuffer& b, int heads, std::int64_t seq) {
    return TensorRef::contiguous(b.get(), p.dtype, Layout::hnd, p.batch, heads, seq, p.head_dim);
  };
  std::vector<float*> lse(inputs.size(), nullptr);
  std::vector<std::unique_ptr<DeviceBuffer>> lse_buffers;
  if (p.lse) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      lse_buffers.push_back(std::make_unique<DeviceBuffer>(std::size_t(p.batch) * p.heads_q * p.seq_q * 4));
      lse[i] = static_cast<float*>(lse_buffers.back()->get());
    }
  }
  AttentionOptions opts = options_for(p, spec);
  opts.fused_q = o.fused_q;
  auto call = [&](std::size_t i) {
    const InputSet& s = inputs[i];
    attention(view(*s.q, p.heads_q, p.seq_q), view(*s.k, p.heads_kv, p.seq_kv), view(*s.v, p.heads_kv, p.seq_kv),
              view(*s.o, p.heads_q, p.seq_q), lse[i], opts, s.stream);
  };
  // Quantize every copy with this candidate's tile (its workspace then serves reuse_quantized).
  for (std::size_t i = 0; i < inputs.size(); ++i) call(i);
  for (const InputSet& s : inputs) SAGEJIT_CU(cuStreamSynchronize, s.stream);
  opts.reuse_quantized = !o.end_to_end;
  for (int w = 0; w < o.warmup; ++w) call(static_cast<std::size_t>(w) % inputs.size());
  for (const InputSet& s : inputs) SAGEJIT_CU(cuStreamSynchronize, s.stream);

  Events ev;
  // One call bracketed by its own events and waited for: the timed runs, and the warm-up before them.
  auto timed_call = [&](std::size_t i) {
    SAGEJIT_CU(cuEventRecord, ev.start, inputs[i].stream);
    call(i);
    SAGEJIT_CU(cuEventRecord, ev.stop, inputs[i].stream);
    SAGEJIT_CU(cuEventSynchronize, ev.stop);
    float ms = 0;
    SAGEJIT_CU(cuEventElapsedTime, &ms, ev.start, ev.stop);
    return static_cast<double>(ms);
  };
  // Untimed calls for warmup_ms of wall time, at the timed runs' duty cycle. A candidate whose median
  // over a batch of them already exceeds give_up_ms is not warmed further: warmer, it would only be
  // slower (the timed runs then give it up after their first batch).
  std::vector<double> batch;
  const auto warm_start = std::chrono::steady_clock::now();
  for (std::size_t w = 0; seconds_since(warm_start) * 1e3 < o.warmup_ms; ++w) {
    batch.push_back(timed_call(w % inputs.size()));
    if (batch.size() < static_cast<std::size_t>(kBatchRuns)) continue;
    if (give_up_ms > 0 && quantile(batch, 0.5) > give_up_ms) break;
    batch.clear();
  }
  std::vector<double> times;
  double last_median = 0;
  for (int run = 0; run < o.max_runs;) {
    for (int b = 0; b < kBatchRuns && run < o.max_runs; ++b, ++run) {
      times.push_back(timed_call(static_cast<std::size_t>(run) % inputs.size()));
    }
    const double median = quantile(times, 0.5);
    if (give_up_ms > 0 && median > give_up_ms) break;  // clearly slower than the best: no need to refine
    if (run >= o.min_runs && std::abs(median - last_median) <= o.stable_change * median) break;
    last_median = median;
  }
  Timing t;
  t.median_ms = quantile(times, 0.5);
  t.spread = t.median_ms > 0 ? (quantile(times, 0.75) - quantile(times, 0.25)) / t.median_ms : 0;
  t.min_ms = *std::min_element(times.begin(), times.end());
  t.max_ms = *std::max_element(times.begin(), times.end());
  t.runs = static_cast<int>(times.size());
  return t;
}

TuningRecord blank_record(const AttnSpec& s, const TuningEnv& env, const std::string& bucket) {
  TuningRecord r;
  r.env = env;
  r.bucket = bucket;
  r.family = std::string(name(s.family));
  r.tile = s.tile.name();
  r.spec = s.canonical_name();
  r.status = "ok";
  return r;
}

}  // namespace

std::vector<CandidateResult> compile_candidates(const Problem& p, const SearchSpace& space, Jit& jit,
                                                const TuningEnv& env, const std::string& bucket,
                                                const std::function<void(const TuneProgress&)>& progress) {
  // The quantization kernels do not depend on the tile: compile them once, up front. A failure
  // here leaves nothing to time, so it propagates.
  std::vector<GeneratedUnit> quant;
  for (const QuantSpec& q : quant_specs_for_call(p.arch, p.dtype, p.head_dim, p.qk, p.smooth_q, p.smooth_k,
                                                 default_spec(p).quant.pv == PvType::fp8_e4m3)) {
    quant.push_back(q.generate());
  }
  jit.cubins(quant);

  std::vector<CandidateResult> results(space.candidates.size());
  std::atomic<std::size_t> next{0};
  std::atomic<int> done{0};
  std::mutex progress_mutex;
  auto worker = [&] {
    for (std::size_t i = next++; i < results.size(); i = next++) {
      CandidateResult& c = results[i];
      c.spec = space.candidates[i];
      c.is_default = static_cast<int>(i) == space.default_index;
      c.record = blank_record(c.spec, env, bucket);
      try {
        const CubinResult r = jit.cubin(c.spec.generate());
        c.usage = r.record.usage;
        if (c.usage.spills()) {
          c.record.status = "spills";
          c.record.reason = fmt::format("ptxas: {} registers, {} bytes spill stores, {} bytes spill loads",
                                        c.usage.registers, c.usage.spill_stores, c.usage.spill_loads);
        }
      } catch (const CompileError& e) {
        c.record.status = "compile_error";
        c.record.reason = std::string(e.what()).substr(0, 2000);
      } catch (const InvalidArgument& e) {
        c.record.status = "invalid";
        c.record.reason = e.what();
      }
      const int n = ++done;
      if (progress) {
        std::lock_guard lock(progress_mutex);
        progress({"compile", n, static_cast<int>(results.size())});
      }
    }
  };
  const std::size_t threads = std::min<std::size_t>(results.size(), static_cast<std::size_t>(settings().compile_threads));
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return results;
}

Timing time_variant(const Problem& p, const AttnSpec& spec, const TimingOptions& o, double give_up_ms) {
  check_timing(o);
  std::vector<InputSet> inputs = make_inputs(p, o.max_input_sets);
  return time_on(p, spec, o, inputs, give_up_ms);
}

TuneResult tune_and_store(const Problem& p, const TuneOptions& o, TuningStore& store, Jit& jit, const TuningEnv& env) {
  check_timing(o.timing);
  const auto start = std::chrono::steady_clock::now();
  TuneResult result;
  result.problem = p;
  result.bucket = bucket_name(p);
  result.env = env;
  if (!o.force) {
    if (auto w = store.winner(env, result.bucket)) {
      result.already_tuned = true;
      result.winner = w;
      result.default_ms = w->default_ms;
      return result;
    }
  } else {
    store.forget(env, result.bucket);
  }
  SearchSpace space = search_space(p);
  if (o.max_candidates > 0 && space.candidates.size() > static_cast<std::size_t>(o.max_candidates)) {
    space.candidates.resize(static_cast<std::size_t>(o.max_candidates));
  }
  result.pruned = space.pruned;
  result.candidates = compile_candidates(p, space, jit, env, result.bucket, o.progress);
  result.compile_seconds = seconds_since(start);

  const auto timing_start = std::chrono::steady_clock::now();
  const std::string run_id = new_tuning_run_id();
  std::vector<InputSet> inputs = make_inputs(p, o.timing.max_input_sets);
  // Kernel-only timing reruns the attention kernel on quantized inputs: the candidates that quantize
  // Q themselves (fused_q) would carry Q's quantization and the others not, so kernel-only
  // candidates all take Q from its pass; end to end times what runs.
  TimingOptions timing = o.timing;
  if (!timing.end_to_end) timing.fused_q = false;
  double best = 0;
  int done = 0;
  // The default first: every other candidate is judged against it and the best so far.
  for (CandidateResult& c : result.candidates) {
    c.record.run_id = run_id;
    if (c.record.status == "ok") {
      try {
        const Timing t = time_on(p, c.spec, timing, inputs, best > 0 ? best * o.give_up_ratio : 0);
        c.record.median_ms = t.median_ms;
        c.record.spread = t.spread;
        c.record.runs = t.runs;
        if (best == 0 || t.median_ms < best) best = t.median_ms;
        if (c.is_default) result.default_ms = t.median_ms;
      } catch (const CudaError& e) {
        c.record.status = "launch_error";
        c.record.reason = e.what();
        spdlog::warn("sagejit tune: {} failed to launch ({})", c.record.spec, e.what());
      } catch (const Error& e) {
        c.record.status = "launch_error";
        c.record.reason = e.what();
      }
    }
    if (o.progress) o.progress({"time", ++done, static_cast<int>(result.candidates.size())});
  }
  result.time_seconds = seconds_since(timing_start);

  std::vector<TuningRecord> records;
  for (const CandidateResult& c : result.candidates) records.push_back(c.record);
  store.put_records(records);
  const AttnSpec def = default_spec(p);
  if (auto best_record = pick_winner(records, std::string(name(def.family)), def.tile.name())) {
    TuningWinner w;
    w.env = env;
    w.bucket = result.bucket;
    w.family = best_record->family;
    w.tile = best_record->tile;
    w.spec = best_record->spec;
    w.median_ms = *best_record->median_ms;
    w.default_ms = result.default_ms;
    w.run_id = run_id;
    result.winner = store.put_winner(w);
    result.adopted = result.winner->run_id != run_id;
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace sagejit
