#include "cli/commands.h"

namespace kvserve::cli {

// Placeholder until this command lands (being written in this session).
void RegisterKvSim(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("kv-sim", "not yet available");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "kvserve kv-sim: not yet available\n");
    exit_code = 2;
  });
}

}  // namespace kvserve::cli
