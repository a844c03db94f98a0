// The thread that owns the Engine. HTTP handler threads Submit() requests and read
// their outputs from a per-request RequestChannel; Abort() (client gone) frees the
// request's blocks in the loop's next iteration. Everything the Engine touches runs
// on the loop thread only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/engine.h"
#include "server/metrics.h"

namespace kvserve::server {

// One request's outputs, produced by the loop, consumed by one handler thread.
class RequestChannel {
 public:
  // Waits up to `timeout` for the admission result (AddRequest's Status).
  std::optional<Status> WaitAdmitted(std::chrono::milliseconds timeout);
  // Moves every pending output into `out`; waits up to `timeout` when none is pending.
  // Returns false once the channel is closed and drained.
  bool Drain(std::vector<RequestOutput>& out, std::chrono::milliseconds timeout);

  void SetAdmitted(Status st);
  void Push(RequestOutput o);
  void Close();  // no more outputs (finished, aborted, or the engine failed)

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Status> admitted_;
  std::deque<RequestOutput> pending_;
  bool closed_ = false;
};

class EngineLoop {
 public:
  // REQUIRES: engine and metrics outlive the loop.
  EngineLoop(Engine& engine, Metrics& metrics);
  ~EngineLoop();  // Stop()s

  void Start();
  // Aborts whatever is unfinished and joins the thread.
  void Stop();

  // Thread-safe. The channel gets the admission Status first, then outputs.
  std::shared_ptr<RequestChannel> Submit(EngineRequest request);
  void Abort(uint64_t id);
  // Runs Engine::CheckInvariants on the loop thread (a failure aborts the process)
  // and returns the KV stats seen at that moment.
  EngineStats CheckInvariants();

  // Latest stats (refreshed after every step and when idle).
  EngineStats Stats() const;
  size_t num_unfinished() const;
  // Set when a Step failed: the engine is unusable, requests get 503.
  std::optional<Status> failure() const;

 private:
  struct Live {
    std::shared_ptr<RequestChannel> channel;
    std::chrono::steady_clock::time_point submitted;
    std::chrono::steady_clock::time_point last_token;
    bool got_token = false;
  };
  struct Command {
    enum class Kind { kAdd, kAbort, kCall } kind;
    EngineRequest request;
    std::shared_ptr<RequestChannel> channel;
    uint64_t id = 0;
    std::function<void()> call;
    std::chrono::steady_clock::time_point submitted;
  };

  void Run();
  void Apply(Command& c);
  void Dispatch(std::vector<RequestOutput>& outs);
  void FailAll(const Status& st);
  void Post(Command c);

  Engine& engine_;
  Metrics& metrics_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Command> commands_;
  bool stop_ = false;
  EngineStats stats_;
  size_t unfinished_ = 0;
  std::optional<Status> failure_;

  std::map<uint64_t, Live> live_;  // loop thread only
};

}  // namespace kvserve::server
