// Server metrics and their Prometheus text exposition (format 0.0.4).
// Counters/histograms are updated from the HTTP threads and the engine loop; the
// engine's own gauges (KV blocks, queues, preemptions) come from an EngineStats snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace kvserve::server {

// Cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Appends "# HELP", "# TYPE" and the _bucket/_sum/_count lines.
  void Render(const std::string& name, const std::string& help, std::string& out) const;
  uint64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, non-cumulative; last = +Inf
  double sum_ = 0.0;
  uint64_t total_ = 0;
};

// Outcomes of an HTTP request to a generation endpoint.
enum class Outcome { kSuccess, kInvalid, kUnauthorized, kNotFound, kRejected, kAborted, kError };
const char* OutcomeName(Outcome o);

class Metrics {
 public:
  Metrics();

  void CountRequest(const std::string& endpoint, Outcome outcome);
  void CountFinish(const std::string& reason);  // per returned sequence: stop, length, abort
  void AddPromptTokens(int64_t n) { prompt_tokens_ += n; }
  void AddGenerationTokens(int64_t n) { generation_tokens_ += n; }
  void CountInvariantCheck() { invariant_checks_ += 1; }

  Histogram& ttft() { return ttft_; }
  Histogram& itl() { return itl_; }
  Histogram& e2e() { return e2e_; }
  uint64_t requests(const std::string& endpoint, Outcome outcome) const;

  // Everything, with the engine snapshot's gauges; `inflight` = HTTP requests in progress.
  std::string Render(const EngineStats& engine, int64_t inflight) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;
  std::map<std::string, uint64_t> finishes_;
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> generation_tokens_{0};
  std::atomic<int64_t> invariant_checks_{0};
  Histogram ttft_;
  Histogram itl_;
  Histogram e2e_;
};

}  // namespace kvserve::server
