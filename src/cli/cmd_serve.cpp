// kvserve serve: the OpenAI-compatible HTTP server (src/server) over one engine.
// SIGTERM/SIGINT: stop accepting generation requests, let in-flight ones finish for
// --shutdown-timeout seconds, abort the rest, exit 0.
#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/model_and_tokenizer.h"
#include "cli/engine_options.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/engine_loop.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace kvserve::cli {
namespace {

struct ServeOptions {
  std::string model_path;
  server::ServerConfig server;
  double shutdown_timeout_s = 30.0;
  EngineOptionValues engine;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "kvserve serve: %s\n", msg.c_str());
  return 1;
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

int RunServe(ServeOptions& opts) {
  // Signals are taken by a sigwait thread, so every other thread must block them;
  // SIGPIPE is ignored (a vanished client is a failed write, not a dead server).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Status st = FinishEngineOptions(opts.engine);
  if (!st.ok()) return Fail(st.message());
  auto loaded = LoadModelAndTokenizer(opts.model_path, opts.engine.weights_memory);
  if (!loaded.ok()) return Fail(loaded.status().ToString());
  const Model& model = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  auto engine = Engine::Create(model, tok, opts.engine.config);
  if (!engine.ok()) return Fail(engine.status().ToString());
  if (opts.server.served_model_name.empty()) opts.server.served_model_name = BaseName(opts.model_path);

  server::Metrics metrics;
  server::EngineLoop loop(**engine, metrics);
  server::HttpServer http(opts.server, **engine, loop, metrics);
  auto port = http.Bind();
  if (!port.ok()) return Fail(port.status().message());
  loop.Start();

  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    std::fprintf(stderr, "kvserve serve: signal %d: shutting down (up to %.0f s for in-flight requests)\n", sig,
                 opts.shutdown_timeout_s);
    http.Shutdown(std::chrono::milliseconds(static_cast<int64_t>(opts.shutdown_timeout_s * 1000)));
  });
  // Tests and scripts read this line to learn the port (with --port 0).
  std::fprintf(stdout, "kvserve serve: listening on http://%s:%d (model '%s', %d KV blocks of %s, context %d)\n",
               opts.server.host.c_str(), *port, opts.server.served_model_name.c_str(), (*engine)->Stats().kv.num_blocks,
               KvCacheDTypeName(opts.engine.config.kv_cache_dtype), (*engine)->max_context());
  std::fflush(stdout);
  http.Serve();
  signals.join();
  loop.Stop();
  std::fprintf(stderr, "kvserve serve: stopped\n");
  return 0;
}

}  // namespace

void RegisterServe(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server");
  auto opts = std::make_shared<ServeOptions>();
  server::ServerConfig& s = opts->server;
  cmd->add_option("--model", opts->model_path, "GGUF file or Hugging Face model directory")->required();
  cmd->add_option("--host", s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "Port (0 = any free port, printed at start)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--api-key", s.api_key, "Require 'Authorization: Bearer KEY' on API routes");
  cmd->add_option("--served-model-name", s.served_model_name, "Model id clients use (default: the model file's name)");
  cmd->add_option("--http-threads", s.http_threads, "Connections served at once")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--keep-alive", s.keep_alive_s, "Seconds an idle keep-alive connection is kept")->check(CLI::Range(1, 3600))->capture_default_str();
  cmd->add_option("--retry-after", s.retry_after_s, "Retry-After seconds of 429/503 answers")->check(CLI::Range(1, 3600))->capture_default_str();
  cmd->add_option("--shutdown-timeout", opts->shutdown_timeout_s, "Seconds in-flight requests may finish after SIGTERM")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  AddEngineOptions(cmd, opts->engine);
  cmd->callback([opts, &exit_code] { exit_code = RunServe(*opts); });
}

}  // namespace kvserve::cli
