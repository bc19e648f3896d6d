// commands.hpp — the `sagejit` subcommands, each registered on the CLI11 app by its own file.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "generator/types.hpp"

namespace sagejit::cli {

void add_info(CLI::App& app);
void add_compile(CLI::App& app);
void add_cache(CLI::App& app);
void add_selftest(CLI::App& app);
void add_tune(CLI::App& app);
void add_bench(CLI::App& app);
void add_export(CLI::App& app);
void add_import(CLI::App& app);

// The targets named by repeated `--arch` flags ("all": every supported arch); with none, the
// current GPU's arch, or InvalidArgument("--arch") when there is no GPU. Shared by compile and export.
std::vector<Arch> target_archs(const std::vector<std::string>& flags);

// The `--warmup-ms` option of bench and tune (TimingOptions::warmup_ms, its default shown): untimed
// calls before each timing, 0 to 60000 ms; anything else, NaN included, is refused at parsing.
CLI::Option* add_warmup_option(CLI::App* cmd, double& warmup_ms, const std::string& before_what);

}  // namespace sagejit::cli
