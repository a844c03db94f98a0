#include "kv/kv_sim.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace kvserve {
namespace {

// Portable draws (std:: distributions differ between standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  double Uniform01() { return static_cast<double>(g_() >> 11) * (1.0 / 9007199254740992.0); }
  int32_t Token() { return static_cast<int32_t>(3 + g_() % 31997); }
  int32_t LogNormal(double median, double sigma, int32_t lo, int32_t hi) {
    double u1 = std::max(Uniform01(), 1e-300), u2 = Uniform01();
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
    double x = std::round(median * std::exp(sigma * z));
    return static_cast<int32_t>(std::clamp<double>(x, lo, hi));
  }
  std::vector<int32_t> Tokens(int32_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = Token();
    return t;
  }

 private:
  std::mt19937_64 g_;
};

// One request of a workload: its prompt and how many tokens each sequence samples.
struct SimRequest {
  std::vector<int32_t> prompt;
  int32_t output_len = 1;
};

class Simulator {
 public:
  Simulator(const KvSimConfig& c, KvCacheManager* m, Rng* rng) : c_(c), m_(m), rng_(rng) {}

  // Prefills every request in order (forking parallel samples), then decodes all
  // sequences one token per step until each has sampled output_len tokens.
  Status RunBatch(const std::vector<SimRequest>& reqs) {
    active_.clear();
    for (const auto& r : reqs) {
      RequestId id = next_id_++;
      m_->AddRequest(id, r.prompt);
      PrefixHit hit = m_->GetComputedBlocks(id);
      int32_t n = m_->NumTokens(id) - hit.num_tokens;
      if (!m_->AllocateSlots(id, n, 0, &hit)) return OutOfBlocks();
      m_->TakePendingCopies();
      m_->CommitComputed(id, n);
      active_.push_back({id, static_cast<int32_t>(r.prompt.size()) + r.output_len});
      for (int32_t s = 1; s < c_.parallel_samples; ++s) {
        RequestId child = next_id_++;
        m_->Fork(id, child);
        active_.push_back({child, static_cast<int32_t>(r.prompt.size()) + r.output_len});
      }
    }
    for (auto& seq : active_) m_->AppendTokens(seq.id, std::vector<int32_t>{rng_->Token()});
    bool any = true;
    while (any) {
      any = false;
      for (auto& seq : active_) {
        if (m_->NumTokens(seq.id) >= seq.final_len) continue;
        any = true;
        if (!m_->AllocateSlots(seq.id, 1)) return OutOfBlocks();
        m_->TakePendingCopies();
        m_->CommitComputed(seq.id, 1);
        m_->AppendTokens(seq.id, std::vector<int32_t>{rng_->Token()});
      }
    }
    return Status::Ok();
  }

  void FreeBatch() {
    for (auto& seq : active_) m_->Free(seq.id);
  }

  int64_t ResidentTokens() const {
    int64_t t = 0;
    for (auto& seq : active_) t += m_->NumTokens(seq.id);
    return t;
  }
  int32_t MaxLen() const {
    int32_t t = 0;
    for (auto& seq : active_) t = std::max(t, m_->NumTokens(seq.id));
    return t;
  }
  int32_t NumSequences() const { return static_cast<int32_t>(active_.size()); }
  std::vector<int32_t> History(size_t i) const {
    auto t = m_->Tokens(active_[i * c_.parallel_samples].id);
    return {t.begin(), t.end()};
  }

 private:
  struct Seq {
    RequestId id;
    int32_t final_len;
  };
  Status OutOfBlocks() const {
    return Status::Internal("kv-sim: pool of " + std::to_string(m_->pool().num_blocks()) +
                            " blocks ran out; the sizing rule is wrong");
  }

  const KvSimConfig& c_;
  KvCacheManager* m_;
  Rng* rng_;
  std::vector<Seq> active_;
  RequestId next_id_ = 1;
};

int32_t BlocksFor(int64_t tokens, int32_t bs) { return static_cast<int32_t>((tokens + bs - 1) / bs); }

}  // namespace

StatusOr<KvWorkload> ParseKvWorkload(std::string_view name) {
  if (name == "lengths") return KvWorkload::kLengths;
  if (name == "shared-prefix") return KvWorkload::kSharedPrefix;
  if (name == "multi-turn") return KvWorkload::kMultiTurn;
  return Status::InvalidArgument("unknown workload '" + std::string(name) +
                                 "' (expected lengths, shared-prefix or multi-turn)");
}

const char* KvWorkloadName(KvWorkload w) {
  switch (w) {
    case KvWorkload::kLengths: return "lengths";
    case KvWorkload::kSharedPrefix: return "shared-prefix";
    case KvWorkload::kMultiTurn: return "multi-turn";
  }
  return "?";
}

StatusOr<KvSimResult> RunKvSim(const KvSimConfig& config, const std::function<void(const KvCacheManager&)>& at_peak) {
  KvSimConfig c = config;
  if (c.num_requests == 0) {
    c.num_requests = c.workload == KvWorkload::kLengths ? 1000 : c.workload == KvWorkload::kSharedPrefix ? 10 : 16;
  }
  if (c.num_requests < 1 || c.num_requests > 1000000) {
    return Status::InvalidArgument("kv-sim: --requests " + std::to_string(c.num_requests) + " outside [1, 1000000]");
  }
  if (c.parallel_samples < 1 || c.parallel_samples > 64) {
    return Status::InvalidArgument("kv-sim: parallel samples " + std::to_string(c.parallel_samples) + " outside [1, 64]");
  }
  if (c.turns < 1 || c.turns > 64) {
    return Status::InvalidArgument("kv-sim: turns " + std::to_string(c.turns) + " outside [1, 64]");
  }
  if (c.block_size < 1 || c.block_size > BlockHasher::kMaxBlockSize) {
    return Status::InvalidArgument("kv-sim: block size " + std::to_string(c.block_size) + " outside [1, " +
                                   std::to_string(BlockHasher::kMaxBlockSize) + "]");
  }
  Rng rng(c.seed);
  const int32_t bs = c.block_size;
  const int32_t samples = c.parallel_samples;

  // Draw the workload up front so the pool can be sized for it.
  std::vector<std::vector<SimRequest>> batches;  // run one after another
  int64_t worst_blocks = 0;                      // no sharing, +1 per sequence for a copy-on-write tail
  if (c.workload == KvWorkload::kLengths || c.workload == KvWorkload::kSharedPrefix) {
    std::vector<int32_t> system, header;
    if (c.workload == KvWorkload::kSharedPrefix) {
      system = rng.Tokens(2048);
      header = rng.Tokens(5);
    }
    std::vector<SimRequest> batch;
    for (int32_t i = 0; i < c.num_requests; ++i) {
      SimRequest r;
      if (c.workload == KvWorkload::kLengths) {
        r.prompt = rng.Tokens(rng.LogNormal(100, 1.1, 4, 4096));
        r.output_len = rng.LogNormal(220, 0.8, 1, 2048);
      } else {
        r.prompt = system;
        r.prompt.insert(r.prompt.end(), header.begin(), header.end());
        auto q = rng.Tokens(rng.LogNormal(64, 0.8, 4, 1024));
        r.prompt.insert(r.prompt.end(), q.begin(), q.end());
        r.output_len = rng.LogNormal(128, 0.8, 1, 1024);
      }
      worst_blocks += static_cast<int64_t>(samples) * (BlocksFor(r.prompt.size() + r.output_len, bs) + 1);
      batch.push_back(std::move(r));
    }
    batches.push_back(std::move(batch));
  } else {
    // Turn prompts depend on earlier replies, so only lengths are drawn here;
    // tokens are filled in as the turns run.
    std::vector<int64_t> len(c.num_requests, 128);
    for (int32_t t = 0; t < c.turns; ++t) {
      std::vector<SimRequest> batch;
      for (int32_t i = 0; i < c.num_requests; ++i) {
        SimRequest r;
        r.prompt.resize(5 + rng.LogNormal(48, 0.8, 1, 512));  // the new user turn only, for now
        r.output_len = rng.LogNormal(160, 0.8, 1, 1024);
        len[i] += static_cast<int64_t>(r.prompt.size()) + r.output_len;
        batch.push_back(std::move(r));
      }
      batches.push_back(std::move(batch));
    }
    for (int64_t l : len) worst_blocks += static_cast<int64_t>(samples) * (BlocksFor(l, bs) + 1);
  }
  if (worst_blocks > 50'000'000) {
    return Status::InvalidArgument("kv-sim: workload needs " + std::to_string(worst_blocks) + " blocks; use fewer requests");
  }

  KvManagerConfig mc;
  mc.num_blocks = static_cast<int32_t>(worst_blocks + 1);
  mc.block_size = bs;
  mc.enable_prefix_caching = c.enable_prefix_caching;
  mc.enable_partial_block_reuse = c.enable_partial_block_reuse;
  mc.hash_seed = c.seed;
  mc.bytes_per_block = c.bytes_per_block;
  KV_ASSIGN_OR_RETURN(auto manager, KvCacheManager::Create(mc));

  KvSimResult res;
  res.config = c;
  res.num_blocks = mc.num_blocks;
  Simulator sim(c, manager.get(), &rng);
  if (c.workload == KvWorkload::kMultiTurn) {
    std::vector<int32_t> system = rng.Tokens(128), header = rng.Tokens(5);
    std::vector<std::vector<int32_t>> history(c.num_requests, system);
    for (size_t t = 0; t < batches.size(); ++t) {
      for (int32_t i = 0; i < c.num_requests; ++i) {
        auto& r = batches[t][i];
        auto msg = rng.Tokens(static_cast<int32_t>(r.prompt.size()) - 5);
        r.prompt = history[i];
        r.prompt.insert(r.prompt.end(), header.begin(), header.end());
        r.prompt.insert(r.prompt.end(), msg.begin(), msg.end());
      }
      KV_RETURN_IF_ERROR(sim.RunBatch(batches[t]));
      for (int32_t i = 0; i < c.num_requests; ++i) history[i] = sim.History(i);
      if (t + 1 < batches.size()) sim.FreeBatch();
    }
  } else {
    KV_RETURN_IF_ERROR(sim.RunBatch(batches[0]));
  }
  res.at_peak = manager->Stats();
  res.num_sequences = sim.NumSequences();
  res.resident_tokens = sim.ResidentTokens();
  res.max_sequence_len = sim.MaxLen();
  if (at_peak) at_peak(*manager);
  manager->CheckInvariants();
  sim.FreeBatch();
  manager->CheckInvariants();
  res.final_stats = manager->Stats();
  const double bytes_per_token = static_cast<double>(c.bytes_per_block) / bs;
  res.bytes_stored = static_cast<int64_t>(res.final_stats.peak_used_blocks) * static_cast<int64_t>(c.bytes_per_block);
  res.bytes_contiguous_equivalent =
      static_cast<int64_t>(static_cast<double>(res.num_sequences) * res.max_sequence_len * bytes_per_token);
  res.bytes_contiguous_exact = static_cast<int64_t>(static_cast<double>(res.resident_tokens) * bytes_per_token);
  return res;
}

nlohmann::json KvSimResult::ToJson() const {
  const KvStats& f = final_stats;
  return nlohmann::json{
      {"workload", KvWorkloadName(config.workload)},
      {"requests", config.num_requests},
      {"seed", config.seed},
      {"block_size", config.block_size},
      {"bytes_per_block", config.bytes_per_block},
      {"parallel_samples", config.parallel_samples},
      {"prefix_caching", config.enable_prefix_caching},
      {"num_blocks", num_blocks},
      {"sequences", num_sequences},
      {"resident_tokens", resident_tokens},
      {"max_sequence_len", max_sequence_len},
      {"blocks_allocated", f.peak_used_blocks},
      {"internal_fragmentation", at_peak.internal_fragmentation},
      {"bytes_stored", bytes_stored},
      {"bytes_contiguous_equivalent", bytes_contiguous_equivalent},
      {"bytes_contiguous_exact", bytes_contiguous_exact},
      {"prefix_hit_rate", f.prefix_hit_rate},
      {"prefix_hit_tokens", f.prefix_hit_tokens},
      {"prefix_query_tokens", f.prefix_query_tokens},
      {"cow_copies", f.cow_copies},
      {"partial_reuse_copies", f.partial_reuse_copies},
      {"partial_reuse_tokens", f.partial_reuse_tokens},
      {"evictions", f.evictions},
      {"stats_at_peak", KvStatsToJson(at_peak)},
  };
}

}  // namespace kvserve
