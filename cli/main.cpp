// main.cpp — the `sagejit` command: parses flags with CLI11 and reports errors on one line.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

int main(int argc, char** argv) {
  CLI::App app{"sagejit: run-time generated SageAttention2-style quantized attention kernels"};
  app.require_subcommand(1);
  sagejit::cli::add_info(app);
  sagejit::cli::add_compile(app);
  sagejit::cli::add_cache(app);
  sagejit::cli::add_selftest(app);
  sagejit::cli::add_tune(app);
  sagejit::cli::add_bench(app);
  sagejit::cli::add_export(app);
  sagejit::cli::add_import(app);
  try {
    sagejit::init_logging();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sagejit::Error& e) {
    fmt::print(stderr, "sagejit: error ({}): {}\n", sagejit::status_name(e.status()), e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "sagejit: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
