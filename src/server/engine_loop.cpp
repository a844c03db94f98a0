#include "server/engine_loop.h"

namespace kvserve::server {

using Clock = std::chrono::steady_clock;

std::optional<Status> RequestChannel::WaitAdmitted(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return admitted_.has_value(); });
  return admitted_;
}

bool RequestChannel::Drain(std::vector<RequestOutput>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (pending_.empty() && !closed_) cv_.wait_for(lock, timeout, [&] { return !pending_.empty() || closed_; });
  while (!pending_.empty()) {
    out.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  return !(closed_ && out.empty());
}

void RequestChannel::SetAdmitted(Status st) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    admitted_ = std::move(st);
  }
  cv_.notify_all();
}

void RequestChannel::Push(RequestOutput o) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(std::move(o));
  }
  cv_.notify_all();
}

void RequestChannel::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

EngineLoop::EngineLoop(Engine& engine, Metrics& metrics) : engine_(engine), metrics_(metrics) { stats_ = engine_.Stats(); }

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::Start() {
  KV_CHECK(!thread_.joinable());
  thread_ = std::thread([this] { Run(); });
}

void EngineLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::Post(Command c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.push_back(std::move(c));
  }
  cv_.notify_all();
}

std::shared_ptr<RequestChannel> EngineLoop::Submit(EngineRequest request) {
  auto ch = std::make_shared<RequestChannel>();
  Command c{Command::Kind::kAdd, std::move(request), ch, 0, nullptr, Clock::now()};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_ || stop_) {
      ch->SetAdmitted(Status::Internal(failure_ ? "the engine failed: " + failure_->message() : "the server is shutting down"));
      ch->Close();
      return ch;
    }
  }
  Post(std::move(c));
  return ch;
}

void EngineLoop::Abort(uint64_t id) {
  Command c;
  c.kind = Command::Kind::kAbort;
  c.id = id;
  Post(std::move(c));
}

EngineStats EngineLoop::CheckInvariants() {
  auto done = std::make_shared<RequestChannel>();
  auto result = std::make_shared<EngineStats>();
  Command c;
  c.kind = Command::Kind::kCall;
  c.call = [this, done, result] {
    engine_.CheckInvariants();
    metrics_.CountInvariantCheck();
    *result = engine_.Stats();
    done->SetAdmitted(Status::Ok());
  };
  Post(std::move(c));
  while (!done->WaitAdmitted(std::chrono::milliseconds(1000))) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) break;
  }
  return *result;
}

EngineStats EngineLoop::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t EngineLoop::num_unfinished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unfinished_;
}

std::optional<Status> EngineLoop::failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

void EngineLoop::Apply(Command& c) {
  switch (c.kind) {
    case Command::Kind::kAdd: {
      uint64_t id = c.request.id;
      int prompt_tokens = static_cast<int>(c.request.prompt.size());
      Status st = engine_.AddRequest(std::move(c.request));
      if (st.ok()) {
        live_[id] = Live{c.channel, c.submitted, c.submitted, false};
        metrics_.AddPromptTokens(prompt_tokens);
      } else {
        c.channel->Close();
      }
      c.channel->SetAdmitted(st);
      break;
    }
    case Command::Kind::kAbort: {
      auto it = live_.find(c.id);
      if (it == live_.end()) break;  // already finished
      engine_.Abort(c.id);
      it->second.channel->Close();
      live_.erase(it);
      break;
    }
    case Command::Kind::kCall:
      c.call();
      break;
  }
}

void EngineLoop::Dispatch(std::vector<RequestOutput>& outs) {
  auto now = Clock::now();
  for (RequestOutput& o : outs) {
    auto it = live_.find(o.id);
    if (it == live_.end()) continue;
    Live& l = it->second;
    int64_t new_tokens = 0;
    for (const SequenceDelta& d : o.deltas) new_tokens += static_cast<int64_t>(d.new_tokens.size());
    if (o.finished && o.deltas.empty()) new_tokens = 0;
    if (new_tokens > 0 || (o.finished && !l.got_token && o.completion_tokens > 0)) {
      if (!l.got_token) metrics_.ttft().Observe(std::chrono::duration<double>(now - l.submitted).count());
      else metrics_.itl().Observe(std::chrono::duration<double>(now - l.last_token).count());
      l.got_token = true;
      l.last_token = now;
    }
    bool finished = o.finished;
    if (finished) {
      metrics_.AddGenerationTokens(o.completion_tokens);
      metrics_.e2e().Observe(std::chrono::duration<double>(now - l.submitted).count());
      for (const FinalSequence& f : o.final_sequences) metrics_.CountFinish(f.finish_reason);
    }
    auto ch = l.channel;
    ch->Push(std::move(o));
    if (finished) {
      ch->Close();
      live_.erase(it);
    }
  }
}

void EngineLoop::FailAll(const Status& st) {
  for (auto& [id, l] : live_) l.channel->Close();
  live_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  failure_ = st;
}

void EngineLoop::Run() {
  auto last_stats = Clock::now();
  for (;;) {
    std::deque<Command> cmds;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!engine_.HasUnfinished() && commands_.empty() && !stop_) {
        stats_ = engine_.Stats();
        unfinished_ = 0;
        cv_.wait(lock, [&] { return !commands_.empty() || stop_; });
      }
      if (stop_) break;  // the commands still queued are answered after the loop
      cmds.swap(commands_);
    }
    for (Command& c : cmds) {
      if (failure_.has_value() && c.kind == Command::Kind::kAdd) {
        c.channel->SetAdmitted(Status::Internal("the engine failed: " + failure_->message()));
        c.channel->Close();
        continue;
      }
      Apply(c);
    }
    if (engine_.HasUnfinished() && !failure_) {
      auto outs = engine_.Step();
      if (!outs.ok()) {
        FailAll(outs.status());
      } else {
        Dispatch(*outs);
      }
    }
    auto now = Clock::now();
    // Stats() walks the KV pool; refresh at most every 20 ms while busy.
    if (now - last_stats > std::chrono::milliseconds(20) || !engine_.HasUnfinished()) {
      EngineStats s = engine_.Stats();
      std::lock_guard<std::mutex> lock(mu_);
      stats_ = s;
      unfinished_ = engine_.num_unfinished();
      last_stats = now;
    }
  }
  // Shutdown: whatever is left is aborted so its blocks go back to the pool.
  std::deque<Command> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rest.swap(commands_);
  }
  for (Command& c : rest) {
    if (c.kind == Command::Kind::kAdd) {
      c.channel->SetAdmitted(Status::Internal("the server is shutting down"));
      c.channel->Close();
    } else if (c.kind == Command::Kind::kCall) {
      c.call();
    }
  }
  for (auto& [id, l] : live_) {
    engine_.Abort(id);
    l.channel->Close();
  }
  live_.clear();
  EngineStats s = engine_.Stats();
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = s;
  unfinished_ = engine_.num_unfinished();
}

}  // namespace kvserve::server
