#include "server/http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/openai_json.h"
#include "server/request_parser.h"

namespace kvserve::server {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
  res.set_content(Dump(e.ToJson()), "application/json");
}

void SendJson(httplib::Response& res, const json& j) { res.set_content(Dump(j), "application/json"); }

Outcome OutcomeOf(const ApiError& e) {
  switch (e.http_status) {
    case 400: return Outcome::kInvalid;
    case 401: return Outcome::kUnauthorized;
    case 404: return Outcome::kNotFound;
    case 429:
    case 503: return Outcome::kRejected;
    default: return Outcome::kError;
  }
}

// Body -> JSON, or a 400 saying where it broke.
std::optional<ApiError> ParseBody(const httplib::Request& req, json* out) {
  try {
    *out = json::parse(req.body);
  } catch (const json::parse_error& e) {
    return BadRequest(fmt::format("request body is not valid JSON: {}", e.what()));
  }
  return std::nullopt;
}

}  // namespace

// One generation request in flight: its engine requests (one per prompt), what they
// produced so far, and the response being written.
struct HttpServer::Generation {
  struct Choice {
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<LogprobInfo> logprobs;
    std::string finish_reason;  // empty while running
    bool started = false;       // streaming: first chunk sent
    bool finish_sent = false;   // streaming: the chunk with finish_reason sent
    size_t text_offset = 0;     // streaming completions logprobs
  };

  HttpServer* server = nullptr;
  std::string endpoint;
  GenerationRequest req;
  std::string id;
  int64_t created = 0;
  std::vector<uint64_t> engine_ids;
  std::vector<std::shared_ptr<RequestChannel>> channels;
  std::vector<bool> closed;                       // per prompt: channel drained and closed
  std::vector<std::optional<RequestOutput>> finals;  // per prompt
  std::vector<Choice> choices;                    // prompts x n
  Clock::time_point last_write = Clock::now();
  bool client_gone = false;
  bool complete = false;

  ~Generation() {
    if (server == nullptr) return;  // refused before admission; counted by the handler
    for (size_t i = 0; i < engine_ids.size(); ++i)
      if (!finals[i]) server->loop_.Abort(engine_ids[i]);
    Outcome o = Outcome::kSuccess;
    if (client_gone || !complete) o = Outcome::kAborted;
    else if (server->loop_.failure()) o = Outcome::kError;
    else
      for (const Choice& c : choices)
        if (c.finish_reason == "abort") o = Outcome::kAborted;
    server->metrics_.CountRequest(endpoint, o);
    server->inflight_ -= 1;
  }

  int n() const { return req.params.n; }
  const Tokenizer& tok() const { return server->engine_.tokenizer(); }

  bool Write(httplib::DataSink& sink, const std::string& s) {
    if (client_gone) return false;
    if (!sink.write(s.data(), s.size())) {
      client_gone = true;
      return false;
    }
    last_write = Clock::now();
    return true;
  }

  json DeltaLogprobs(Choice& c, const std::vector<int32_t>& toks, const std::vector<LogprobInfo>& lps) {
    if (!req.params.logprobs) return nullptr;
    if (req.chat) return ChatLogprobs(tok(), toks, lps, req.top_logprobs);
    json j = CompletionLogprobs(tok(), toks, lps, c.text_offset);
    for (const auto& t : j["tokens"]) c.text_offset += t.get<std::string>().size();
    return j;
  }

  // Streams one chunk for choice `ci`; text may be empty when only finishing.
  bool StreamChunk(httplib::DataSink& sink, int ci, const std::string& text, const std::vector<int32_t>& toks,
                   const std::vector<LogprobInfo>& lps, const std::string& finish) {
    Choice& c = choices[ci];
    const std::string& model = req.model;
    if (req.chat) {
      if (!c.started) {
        c.started = true;
        if (!Write(sink, SseEvent(ChatChunk(id, created, model, ci, {{"role", "assistant"}, {"content", ""}}, "", nullptr))))
          return false;
      }
      if (!text.empty() || !toks.empty()) {
        if (!Write(sink, SseEvent(ChatChunk(id, created, model, ci, {{"content", text}}, "", DeltaLogprobs(c, toks, lps)))))
          return false;
      }
      if (!finish.empty()) {
        c.finish_sent = true;
        return Write(sink, SseEvent(ChatChunk(id, created, model, ci, json::object(), finish, nullptr)));
      }
      return true;
    }
    std::string t = text;
    if (!c.started) {
      c.started = true;
      if (req.echo) {
        size_t prompt = static_cast<size_t>(ci / n());
        t = req.prompt_texts[prompt] + t;
        c.text_offset = req.prompt_texts[prompt].size();
      }
    }
    if (t.empty() && toks.empty() && finish.empty()) return true;
    if (!finish.empty()) c.finish_sent = true;
    return Write(sink, SseEvent(CompletionChunk(id, created, model, ci, t, finish, DeltaLogprobs(c, toks, lps))));
  }

  // Folds one engine output of prompt `p` into the choices (and the stream).
  bool Handle(httplib::DataSink& sink, size_t p, RequestOutput& o) {
    for (SequenceDelta& d : o.deltas) {
      if (d.index >= n()) continue;  // best_of extras are never returned mid-flight
      int ci = static_cast<int>(p) * n() + d.index;
      Choice& c = choices[ci];
      c.text += d.new_text;
      c.tokens.insert(c.tokens.end(), d.new_tokens.begin(), d.new_tokens.end());
      c.logprobs.insert(c.logprobs.end(), d.new_logprobs.begin(), d.new_logprobs.end());
      std::string finish = d.finished ? d.finish_reason : "";
      if (req.stream && !StreamChunk(sink, ci, d.new_text, d.new_tokens, d.new_logprobs, finish)) return false;
      if (d.finished) c.finish_reason = d.finish_reason;
    }
    if (o.finished) {
      // The returned sequences, best first: choice index = rank (matches OpenAI's best_of).
      for (size_t r = 0; r < o.final_sequences.size() && static_cast<int>(r) < n(); ++r) {
        const FinalSequence& f = o.final_sequences[r];
        int ci = static_cast<int>(p) * n() + static_cast<int>(r);
        if (req.stream) {
          // Streaming never has best_of > n, so rank r may differ from the sequence index;
          // finish whichever choice streamed this sequence.
          int si = static_cast<int>(p) * n() + f.index;
          if (f.index < n() && !choices[si].finish_sent) {
            if (!StreamChunk(sink, si, "", {}, {}, f.finish_reason)) return false;
            choices[si].finish_reason = f.finish_reason;
          }
          continue;
        }
        Choice& c = choices[ci];
        c.text = f.text;
        c.tokens = f.tokens;
        c.logprobs = f.logprobs;
        c.finish_reason = f.finish_reason;
      }
      finals[p] = std::move(o);
    }
    return true;
  }

  Usage ComputeUsage() const {
    Usage u;
    for (size_t p = 0; p < req.prompts.size(); ++p) {
      if (finals[p]) {
        u.prompt_tokens += finals[p]->prompt_tokens;
        u.completion_tokens += finals[p]->completion_tokens;
        u.cached_tokens += finals[p]->cached_prompt_tokens;
      } else {
        u.prompt_tokens += static_cast<int64_t>(req.prompts[p].size());
        for (int k = 0; k < n(); ++k) u.completion_tokens += static_cast<int64_t>(choices[p * n() + k].tokens.size());
      }
    }
    return u;
  }

  json FullResponse() const {
    json cs = json::array();
    for (size_t ci = 0; ci < choices.size(); ++ci) {
      const Choice& c = choices[ci];
      std::string reason = c.finish_reason.empty() ? "abort" : c.finish_reason;
      json lp = nullptr;
      if (req.params.logprobs) {
        lp = req.chat ? ChatLogprobs(tok(), c.tokens, c.logprobs, req.top_logprobs)
                      : CompletionLogprobs(tok(), c.tokens, c.logprobs, req.echo ? req.prompt_texts[ci / n()].size() : 0);
      }
      if (req.chat) {
        cs.push_back({{"index", ci}, {"message", {{"role", "assistant"}, {"content", c.text}}}, {"logprobs", lp},
                      {"finish_reason", reason}});
      } else {
        std::string text = req.echo ? req.prompt_texts[ci / n()] + c.text : c.text;
        cs.push_back({{"index", ci}, {"text", text}, {"logprobs", lp}, {"finish_reason", reason}});
      }
    }
    return req.chat ? ChatResponse(id, created, req.model, cs, ComputeUsage())
                    : CompletionResponse(id, created, req.model, cs, ComputeUsage());
  }

  // The chunked content provider: returns false to drop the connection.
  bool Pump(httplib::DataSink& sink) {
    bool progressed = false;
    for (int pass = 0; pass < 2 && !progressed; ++pass) {
      bool waited = false;
      for (size_t p = 0; p < channels.size(); ++p) {
        if (closed[p]) continue;
        std::vector<RequestOutput> outs;
        auto timeout = std::chrono::milliseconds(0);
        if (pass == 1 && !waited) {
          timeout = std::chrono::milliseconds(std::min(50, server->config_.heartbeat_ms));
          waited = true;
        }
        bool open = channels[p]->Drain(outs, timeout);
        for (RequestOutput& o : outs)
          if (!Handle(sink, p, o)) return false;
        progressed |= !outs.empty();
        if (!open) {
          closed[p] = true;
          progressed = true;
        }
      }
    }
    bool all_closed = true;
    for (bool c : closed) all_closed &= c;
    if (all_closed) {
      // Sequences that never finished were cut by shutdown or an engine failure.
      for (Choice& c : choices)
        if (c.finish_reason.empty()) c.finish_reason = "abort";
      if (req.stream) {
        for (size_t ci = 0; ci < choices.size(); ++ci)
          if (!choices[ci].finish_sent && !StreamChunk(sink, static_cast<int>(ci), "", {}, {}, choices[ci].finish_reason))
            return false;
        if (req.include_usage && !Write(sink, SseEvent(UsageChunk(id, created, req.model, req.chat, ComputeUsage()))))
          return false;
        if (!Write(sink, kSseDone)) return false;
      } else {
        if (!Write(sink, Dump(FullResponse()))) return false;
      }
      complete = true;
      sink.done();
      return true;
    }
    if (Clock::now() - last_write > std::chrono::milliseconds(server->config_.heartbeat_ms)) {
      // SSE comment / JSON leading whitespace: ignored by clients, but a failed write
      // tells us the client is gone while the request is still queued.
      if (!Write(sink, req.stream ? std::string(": keep-alive\n\n") : std::string(" "))) return false;
    }
    return true;
  }
};

HttpServer::HttpServer(ServerConfig config, const Engine& engine, EngineLoop& loop, Metrics& metrics)
    : config_(std::move(config)), engine_(engine), loop_(loop), metrics_(metrics), http_(std::make_unique<httplib::Server>()) {
  created_ = static_cast<int64_t>(std::time(nullptr));
  int threads = config_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(size_t{16} << 20);
  http_->set_keep_alive_max_count(1000);
  http_->set_keep_alive_timeout(config_.keep_alive_s);
  // httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and
  // silently take a share of its connections; SO_REUSEADDR alone still allows a restart
  // while old connections sit in TIME_WAIT. The hook also remembers the socket for Bind().
  http_->set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_socket_ = sock;
  });
  Routes();
}

HttpServer::~HttpServer() = default;

bool HttpServer::Authorized(const httplib::Request& req) const {
  if (config_.api_key.empty()) return true;
  std::string h = req.get_header_value("Authorization");
  return h == "Bearer " + config_.api_key;
}

void HttpServer::HandleGenerate(bool chat, const httplib::Request& hreq, httplib::Response& res) {
  std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  auto fail = [&](const ApiError& e) {
    metrics_.CountRequest(endpoint, OutcomeOf(e));
    SendError(res, e);
  };
  if (!Authorized(hreq)) return fail(Unauthorized());
  if (draining_) return fail(Unavailable("the server is shutting down", config_.retry_after_s));
  if (auto f = loop_.failure()) return fail(Unavailable("the engine failed: " + f->message(), config_.retry_after_s));
  json body;
  if (auto e = ParseBody(hreq, &body)) return fail(*e);

  auto gen = std::make_shared<Generation>();
  GenerationRequest& req = gen->req;
  ParseLimits limits{config_.served_model_name, engine_.max_context(), engine_.tokenizer().vocab_size()};
  const Tokenizer& tok = engine_.tokenizer();
  if (chat) {
    if (auto e = ParseChatRequest(body, limits, &req)) return fail(*e);
    auto prompt = RenderChatPrompt(tok, req.messages);
    if (!prompt.ok()) return fail(BadRequest(prompt.status().message(), "messages"));
    req.prompts = {tok.Encode(prompt->text, prompt->add_special, prompt->parse_special)};
    req.prompt_texts = {prompt->text};
    if (auto e = CheckPromptLength(req.prompts[0], req.params, limits.max_context)) return fail(*e);
  } else {
    if (auto e = ParseCompletionRequest(body, limits, tok, &req)) return fail(*e);
  }

  inflight_ += 1;
  gen->server = this;  // from here on the destructor counts the request
  gen->endpoint = endpoint;
  gen->created = static_cast<int64_t>(std::time(nullptr));
  uint64_t first_id = next_id_.fetch_add(req.prompts.size());
  gen->id = fmt::format("{}-{:x}{:06x}", chat ? "chatcmpl" : "cmpl", gen->created, first_id);
  gen->closed.assign(req.prompts.size(), false);
  gen->finals.resize(req.prompts.size());
  gen->choices.resize(req.prompts.size() * static_cast<size_t>(req.params.n));
  for (size_t p = 0; p < req.prompts.size(); ++p) {
    EngineRequest er;
    er.id = first_id + p;
    er.prompt = req.prompts[p];
    er.params = req.params;
    er.priority = req.priority;
    er.cache_salt = req.cache_salt;
    gen->channels.push_back(loop_.Submit(std::move(er)));
    gen->engine_ids.push_back(first_id + p);
  }
  // All admitted, or the first refusal decides the answer (the admitted ones are
  // aborted by the Generation's destructor).
  for (size_t p = 0; p < gen->channels.size(); ++p) {
    std::optional<Status> st;
    while (!(st = gen->channels[p]->WaitAdmitted(std::chrono::milliseconds(1000)))) {
    }
    if (!st->ok()) {
      gen->finals[p] = RequestOutput{};  // never admitted: nothing to abort
      ApiError e = FromStatus(*st, config_.retry_after_s);
      if (st->code() == Status::Code::kInternal) e = Unavailable(st->message(), config_.retry_after_s);
      gen->complete = true;
      gen->server = nullptr;  // counted here instead
      inflight_ -= 1;
      for (size_t q = 0; q < gen->channels.size(); ++q)
        if (q != p) loop_.Abort(gen->engine_ids[q]);
      gen->engine_ids.clear();
      gen->choices.clear();
      return fail(e);
    }
  }
  const char* type = req.stream ? "text/event-stream" : "application/json";
  if (req.stream) res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      type, [gen](size_t, httplib::DataSink& sink) { return gen->Pump(sink); },
      [gen](bool) { /* the last reference may be here: ~Generation aborts what is unfinished */ });
}

void HttpServer::Routes() {
  httplib::Server& s = *http_;
  s.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { HandleGenerate(false, q, r); });
  s.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { HandleGenerate(true, q, r); });

  auto model_json = [this] {
    return json{{"id", config_.served_model_name}, {"object", "model"}, {"created", created_}, {"owned_by", "kvserve"},
                {"max_model_len", engine_.max_context()}};
  };
  s.Get("/v1/models", [this, model_json](const httplib::Request& q, httplib::Response& r) {
    if (!Authorized(q)) return SendError(r, Unauthorized());
    SendJson(r, {{"object", "list"}, {"data", json::array({model_json()})}});
  });
  s.Get(R"(/v1/models/(.+))", [this, model_json](const httplib::Request& q, httplib::Response& r) {
    if (!Authorized(q)) return SendError(r, Unauthorized());
    if (q.matches[1] != config_.served_model_name)
      return SendError(r, NotFound(fmt::format("The model '{}' does not exist", q.matches[1].str()), "model_not_found"));
    SendJson(r, model_json());
  });

  s.Post("/tokenize", [this](const httplib::Request& q, httplib::Response& r) {
    if (!Authorized(q)) return SendError(r, Unauthorized());
    json body;
    if (auto e = ParseBody(q, &body)) return SendError(r, *e);
    if (!body.is_object()) return SendError(r, BadRequest("request body must be a JSON object"));
    if (body.contains("model") && !body["model"].is_null() && body["model"] != config_.served_model_name)
      return SendError(r, NotFound(fmt::format("The model '{}' does not exist", body["model"].dump()), "model_not_found"));
    const Tokenizer& tok = engine_.tokenizer();
    bool add_special = true;
    if (body.contains("add_special_tokens")) {
      if (!body["add_special_tokens"].is_boolean()) return SendError(r, BadRequest("'add_special_tokens' must be a boolean", "add_special_tokens"));
      add_special = body["add_special_tokens"].get<bool>();
    }
    std::vector<int32_t> ids;
    if (body.contains("messages")) {
      GenerationRequest gr;
      json chat_body = {{"messages", body["messages"]}};
      ParseLimits limits{config_.served_model_name, engine_.max_context(), tok.vocab_size()};
      if (auto e = ParseChatRequest(chat_body, limits, &gr)) return SendError(r, *e);
      auto prompt = RenderChatPrompt(tok, gr.messages);
      if (!prompt.ok()) return SendError(r, BadRequest(prompt.status().message(), "messages"));
      ids = tok.Encode(prompt->text, prompt->add_special, prompt->parse_special);
    } else if (body.contains("prompt") && body["prompt"].is_string()) {
      ids = tok.Encode(body["prompt"].get<std::string>(), add_special, false);
    } else {
      return SendError(r, BadRequest("'prompt' (a string) or 'messages' is required", "prompt"));
    }
    SendJson(r, {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", engine_.max_context()}});
  });

  s.Post("/detokenize", [this](const httplib::Request& q, httplib::Response& r) {
    if (!Authorized(q)) return SendError(r, Unauthorized());
    json body;
    if (auto e = ParseBody(q, &body)) return SendError(r, *e);
    const Tokenizer& tok = engine_.tokenizer();
    if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
      return SendError(r, BadRequest("'tokens' must be an array of token ids", "tokens"));
    std::vector<int32_t> ids;
    for (const json& t : body["tokens"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tok.vocab_size())
        return SendError(r, BadRequest(fmt::format("'tokens' entries must be integers in [0, {}), got {}", tok.vocab_size(), t.dump()), "tokens"));
      ids.push_back(t.get<int32_t>());
    }
    SendJson(r, {{"prompt", tok.Decode(ids, true)}});
  });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
    if (auto f = loop_.failure()) return SendError(r, Unavailable("the engine failed: " + f->message(), config_.retry_after_s));
    if (draining_) return SendError(r, Unavailable("the server is shutting down", config_.retry_after_s));
    SendJson(r, {{"status", "ok"}});
  });

  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
    r.set_content(metrics_.Render(loop_.Stats(), inflight_.load()), "text/plain; version=0.0.4");
  });

  s.Get("/debug/invariants", [this](const httplib::Request& q, httplib::Response& r) {
    if (!Authorized(q)) return SendError(r, Unauthorized());
    EngineStats st = loop_.CheckInvariants();  // a broken invariant aborts the process
    SendJson(r, {{"ok", true},
                 {"num_running", st.num_running},
                 {"num_waiting", st.num_waiting},
                 {"kv", KvStatsToJson(st.kv)}});
  });

  s.set_error_handler([](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;
    if (r.status == 404) return SendError(r, NotFound(fmt::format("no route for {} {}", q.method, q.path)));
    ApiError e = BadRequest(fmt::format("HTTP error {}", r.status));
    e.http_status = r.status;
    SendError(r, e);
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(r, InternalError("internal error: " + what));
  });
}

StatusOr<int> HttpServer::Bind() {
  int port = config_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(config_.host);
    if (port <= 0) return Status::IOError(fmt::format("cannot bind {}:<any port>", config_.host));
  } else if (!http_->bind_to_port(config_.host, port)) {
    return Status::IOError(fmt::format("cannot bind {}:{} (in use, or not a local address)", config_.host, port));
  }
  // The packaged httplib listens with a backlog of 5 (compiled into its library). A burst
  // of clients connecting at once overflows that: the kernel drops their SYNs and each waits
  // out TCP's retransmit backoff (1, 3, 7, ... s), on a busy machine long enough to fail.
  // listen() again on a listening socket only changes the backlog (the kernel caps it at
  // net.core.somaxconn).
  if (::listen(listen_socket_, SOMAXCONN) != 0)
    return Status::IOError(fmt::format("cannot listen on {}:{}: {}", config_.host, port, std::strerror(errno)));
  return port;
}

void HttpServer::Serve() { http_->listen_after_bind(); }

void HttpServer::Shutdown(std::chrono::milliseconds grace) {
  draining_ = true;
  auto deadline = Clock::now() + grace;
  while (inflight_.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Whatever is left is aborted: the loop closes every channel, the responses end.
  loop_.Stop();
  auto hard = Clock::now() + std::chrono::seconds(5);
  while (inflight_.load() > 0 && Clock::now() < hard) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  http_->stop();
}

}  // namespace kvserve::server
