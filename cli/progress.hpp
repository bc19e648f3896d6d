// progress.hpp — a progress bar with ETA on stderr for long CLI commands (`sagejit tune`).
//
// On a terminal: one line redrawn in place. Otherwise (a log file, CI): a plain line at the start
// of each phase and every 10% of it, so logs stay readable. Never writes to stdout, so `--json`
// output stays clean.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace sagejit::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string title) : title_(std::move(title)), tty_(isatty(fileno(stderr)) != 0) {}
  ~ProgressBar() { finish(); }

  void update(const std::string& phase, int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (phase != phase_) {
      phase_ = phase, phase_start_ = now, last_decile_ = -1;
    }
    const double elapsed = std::chrono::duration<double>(now - phase_start_).count();
    // ETA of this phase from its own rate so far (compiles and timings go at different speeds).
    const double eta = done > 0 ? elapsed * (total - done) / done : 0;
    const int width = 30;
    const int filled = total > 0 ? width * done / total : width;
    if (tty_) {
      fmt::print(stderr, "\r{} {:<7} [{}{}] {}/{} ETA {:.0f} s   ", title_, phase, std::string(filled, '#'),
                 std::string(width - filled, '.'), done, total, eta);
      std::fflush(stderr);
      drawn_ = true;
      return;
    }
    const int decile = total > 0 ? 10 * done / total : 10;
    if (decile != last_decile_) {
      last_decile_ = decile;
      fmt::print(stderr, "{} {} {}/{} ({:.0f} s, ETA {:.0f} s)\n", title_, phase, done, total, elapsed, eta);
    }
  }

  void finish() {
    if (tty_ && drawn_) fmt::print(stderr, "\n");
    drawn_ = false;
  }

 private:
  std::string title_;
  bool tty_;
  bool drawn_ = false;
  std::string phase_;
  std::chrono::steady_clock::time_point phase_start_;
  int last_decile_ = -1;
};

}  // namespace sagejit::cli
