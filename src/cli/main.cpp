#include <cstdio>
#include <exception>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kvserve: LLM inference engine and OpenAI-compatible server with a paged KV cache"};
  app.require_subcommand(1);
  int exit_code = 0;
  kvserve::cli::RegisterGenerate(app, exit_code);
  kvserve::cli::RegisterPerplexity(app, exit_code);
  kvserve::cli::RegisterSynth(app, exit_code);
  kvserve::cli::RegisterKvSim(app, exit_code);
  kvserve::cli::RegisterBench(app, exit_code);
  kvserve::cli::RegisterServe(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
