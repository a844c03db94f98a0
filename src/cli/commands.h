// Subcommands of the kvserve binary; each lives in its own cmd_*.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace kvserve::cli {

// Each adds its subcommand to `app`; the callback runs it and sets `exit_code`.
void RegisterGenerate(CLI::App& app, int& exit_code);
void RegisterPerplexity(CLI::App& app, int& exit_code);
void RegisterSynth(CLI::App& app, int& exit_code);
void RegisterKvSim(CLI::App& app, int& exit_code);
void RegisterBench(CLI::App& app, int& exit_code);
void RegisterServe(CLI::App& app, int& exit_code);

}  // namespace kvserve::cli
