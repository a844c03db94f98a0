#include "server/metrics.h"

#include <fmt/format.h>

namespace kvserve::server {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  counts_[i] += 1;
  sum_ += v;
  total_ += 1;
}

uint64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cum);
  }
  cum += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cum, name, sum_, name, total_);
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kSuccess: return "success";
    case Outcome::kInvalid: return "invalid";
    case Outcome::kUnauthorized: return "unauthorized";
    case Outcome::kNotFound: return "not_found";
    case Outcome::kRejected: return "rejected";
    case Outcome::kAborted: return "aborted";
    case Outcome::kError: return "error";
  }
  return "unknown";
}

namespace {
std::vector<double> LatencyBounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}
}  // namespace

Metrics::Metrics() : ttft_(LatencyBounds()), itl_(LatencyBounds()), e2e_(LatencyBounds()) {}

void Metrics::CountRequest(const std::string& endpoint, Outcome outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[{endpoint, OutcomeName(outcome)}] += 1;
}

void Metrics::CountFinish(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  finishes_[reason] += 1;
}

uint64_t Metrics::requests(const std::string& endpoint, Outcome outcome) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find({endpoint, OutcomeName(outcome)});
  return it == requests_.end() ? 0 : it->second;
}

std::string Metrics::Render(const EngineStats& s, int64_t inflight) const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto line = [&](const std::string& name, double v) { out += fmt::format("{} {}\n", name, v); };
  {
    std::lock_guard<std::mutex> lock(mu_);
    metric("kvserve_requests_total", "counter", "HTTP generation requests by endpoint and outcome");
    for (const auto& [k, v] : requests_)
      out += fmt::format("kvserve_requests_total{{endpoint=\"{}\",outcome=\"{}\"}} {}\n", k.first, k.second, v);
    metric("kvserve_sequences_finished_total", "counter", "Returned sequences by finish reason");
    for (const auto& [k, v] : finishes_) out += fmt::format("kvserve_sequences_finished_total{{reason=\"{}\"}} {}\n", k, v);
  }
  metric("kvserve_prompt_tokens_total", "counter", "Prompt tokens of admitted requests");
  line("kvserve_prompt_tokens_total", static_cast<double>(prompt_tokens_.load()));
  metric("kvserve_generation_tokens_total", "counter", "Generated tokens (all sequences, best_of included)");
  line("kvserve_generation_tokens_total", static_cast<double>(generation_tokens_.load()));
  ttft_.Render("kvserve_time_to_first_token_seconds", "Submission to first generated token", out);
  itl_.Render("kvserve_inter_token_latency_seconds", "Time between consecutive token deliveries of a request", out);
  e2e_.Render("kvserve_e2e_request_latency_seconds", "Submission to completion", out);

  metric("kvserve_http_requests_in_flight", "gauge", "Generation requests being served");
  line("kvserve_http_requests_in_flight", static_cast<double>(inflight));
  metric("kvserve_num_requests_running", "gauge", "Sequences holding KV blocks");
  line("kvserve_num_requests_running", s.num_running);
  metric("kvserve_num_requests_waiting", "gauge", "Sequences waiting (new, preempted or swapped)");
  line("kvserve_num_requests_waiting", s.num_waiting);
  metric("kvserve_kv_blocks_total", "gauge", "KV blocks in the pool");
  line("kvserve_kv_blocks_total", s.kv.num_blocks);
  metric("kvserve_kv_blocks_used", "gauge", "KV blocks referenced by a request");
  line("kvserve_kv_blocks_used", s.kv.used_blocks);
  metric("kvserve_kv_blocks_free", "gauge", "KV blocks in the free queue (cached ones included)");
  line("kvserve_kv_blocks_free", s.kv.free_blocks);
  metric("kvserve_kv_blocks_cached", "gauge", "KV blocks holding a prefix-cache entry");
  line("kvserve_kv_blocks_cached", s.kv.cached_blocks);
  metric("kvserve_kv_usage_ratio", "gauge", "Used / total KV blocks");
  line("kvserve_kv_usage_ratio", s.kv.num_blocks > 0 ? static_cast<double>(s.kv.used_blocks) / s.kv.num_blocks : 0.0);
  metric("kvserve_kv_blocks_peak_used", "gauge", "Most KV blocks used at once");
  line("kvserve_kv_blocks_peak_used", s.peak_kv_blocks_used);
  metric("kvserve_prefix_cache_hit_rate", "gauge", "Prefix-cache hit tokens / queried tokens");
  line("kvserve_prefix_cache_hit_rate", s.kv.prefix_hit_rate);
  metric("kvserve_prefix_cache_queries_tokens_total", "counter", "Prompt tokens looked up in the prefix cache");
  line("kvserve_prefix_cache_queries_tokens_total", static_cast<double>(s.kv.prefix_query_tokens));
  metric("kvserve_prefix_cache_hits_tokens_total", "counter", "Prompt tokens served by the prefix cache");
  line("kvserve_prefix_cache_hits_tokens_total", static_cast<double>(s.kv.prefix_hit_tokens));
  metric("kvserve_preemptions_total", "counter", "Preempted sequences by mode");
  out += fmt::format("kvserve_preemptions_total{{mode=\"recompute\"}} {}\n", s.preemptions_recompute);
  out += fmt::format("kvserve_preemptions_total{{mode=\"swap\"}} {}\n", s.preemptions_swap);
  metric("kvserve_kv_cow_copies_total", "counter", "Copy-on-write KV block copies");
  line("kvserve_kv_cow_copies_total", static_cast<double>(s.kv.cow_copies));
  metric("kvserve_kv_evictions_total", "counter", "Cached KV blocks reused for new data");
  line("kvserve_kv_evictions_total", static_cast<double>(s.kv.evictions));
  metric("kvserve_engine_steps_total", "counter", "Engine iterations");
  line("kvserve_engine_steps_total", static_cast<double>(s.steps));
  metric("kvserve_engine_aborted_requests_total", "counter", "Requests aborted inside the engine (client gone, shutdown)");
  line("kvserve_engine_aborted_requests_total", static_cast<double>(s.aborted_requests));
  metric("kvserve_invariant_checks_passed_total", "counter", "Engine invariant checks run (a failing check aborts the process)");
  line("kvserve_invariant_checks_passed_total", static_cast<double>(invariant_checks_.load()));
  return out;
}

}  // namespace kvserve::server
