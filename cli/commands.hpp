// commands.hpp — the `sagejit` subcommands, each registered on the CLI11 app by its own file.
#pragma once

#include <CLI/CLI.hpp>

namespace sagejit::cli {

void add_info(CLI::App& app);
void add_compile(CLI::App& app);
void add_cache(CLI::App& app);
void add_selftest(CLI::App& app);
void add_tune(CLI::App& app);
void add_bench(CLI::App& app);
void add_export(CLI::App& app);
void add_import(CLI::App& app);

}  // namespace sagejit::cli
