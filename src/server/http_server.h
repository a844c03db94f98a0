// kvserve's OpenAI-compatible HTTP front end (cpp-httplib). Handler threads parse and
// validate, submit to the EngineLoop, and stream RequestOutputs back; a response whose
// client went away (a write fails) aborts its engine requests at once.
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models[/{id}],
// POST /tokenize, POST /detokenize, GET /health, GET /metrics, GET /debug/invariants
// (runs Engine::CheckInvariants; a failing check aborts the process, so a 200 means it passed).
//
// Non-streaming responses are sent with chunked encoding and leading-whitespace
// heartbeats (valid JSON) so that a vanished client is noticed while its request is
// still queued or generating; their status is therefore fixed (200) once admitted, and
// sequences cut short by a shutdown report finish_reason "abort".
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/engine_loop.h"
#include "server/metrics.h"
#include "util/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace kvserve::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = any free port
  std::string api_key;  // empty = no authentication
  std::string served_model_name;
  int http_threads = 512;   // concurrent connections served (each stream holds one)
  int retry_after_s = 1;    // Retry-After of 429 / 503 answers
  int heartbeat_ms = 250;   // idle interval after which a response writes a heartbeat
  // Idle keep-alive connections are kept this long. Clients with pooled agents (the
  // openai npm client keeps sockets for minutes) may race the server closing an idle
  // socket; a longer value narrows that window but delays shutdown by as much, and each idle connection holds one of
  // `http_threads`.
  int keep_alive_s = 5;
};

class HttpServer {
 public:
  // REQUIRES: engine (read-only here: tokenizer, context), loop and metrics outlive the server.
  HttpServer(ServerConfig config, const Engine& engine, EngineLoop& loop, Metrics& metrics);
  ~HttpServer();

  // Binds the listening socket; returns the port (useful with port 0).
  StatusOr<int> Bind();
  // Serves until Stop(); REQUIRES: Bind() succeeded.
  void Serve();
  // Graceful: refuse new generation requests (503), let in-flight ones finish for up to
  // `grace`, then abort the rest (their streams end with finish_reason "abort") and stop.
  void Shutdown(std::chrono::milliseconds grace);

  int64_t inflight() const { return inflight_.load(); }

 private:
  struct Generation;
  void Routes();
  void HandleGenerate(bool chat, const httplib::Request& req, httplib::Response& res);
  bool Authorized(const httplib::Request& req) const;

  ServerConfig config_;
  const Engine& engine_;
  EngineLoop& loop_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> http_;
  int listen_socket_ = -1;  // set by the socket options hook while binding
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int64_t> inflight_{0};
  std::atomic<bool> draining_{false};
  int64_t created_ = 0;
};

}  // namespace kvserve::server
