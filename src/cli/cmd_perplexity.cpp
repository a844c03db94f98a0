#include "cli/commands.h"

namespace kvserve::cli {

// Placeholder until this command lands (being written in this session).
void RegisterPerplexity(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("perplexity", "not yet available");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "kvserve perplexity: not yet available\n");
    exit_code = 2;
  });
}

}  // namespace kvserve::cli
