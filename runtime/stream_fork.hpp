// stream_fork.hpp — a helper stream per caller stream, so that independent kernels of one call
// (the quantization passes) run side by side.
//
// fork() makes the helper stream wait for everything queued on the caller's stream so far; join()
// makes the caller's stream wait for everything queued on the helper. Both only enqueue event
// records and waits: nothing synchronizes the host, and inside a CUDA graph capture the helper
// stream joins the capture through the fork and leaves it through the join, so a call that forks
// must always join before it returns. The helper and its event are created on the first call for a
// (context, stream) pair (warm up before capturing) and live for the process. The helper is
// non-blocking, so a caller on the legacy default stream is not serialized against it.
// How it fails: a driver error (CudaError) from creating or enqueuing; nothing is left half-forked
// by the functions here (a caller that throws between fork and join leaves the helper waiting on
// work that completes anyway).
#pragma once

#include <cuda.h>

namespace sagejit {

class StreamFork {
 public:
  // The helper of `stream` in the current context.
  static StreamFork& of(CUstream stream);

  CUstream helper() const { return helper_; }
  void fork(CUstream stream);  // helper waits for stream's work so far
  void join(CUstream stream);  // stream waits for helper's work so far

  StreamFork(const StreamFork&) = delete;
  StreamFork& operator=(const StreamFork&) = delete;
  StreamFork(CUstream helper, CUevent event) : helper_(helper), event_(event) {}

 private:
  CUstream helper_ = nullptr;
  CUevent event_ = nullptr;  // re-recorded at every fork and join (a wait takes the record of its call)
};

}  // namespace sagejit
