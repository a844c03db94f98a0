// Engine: one loop owns all KV state. Step() = Schedule() -> Execute() -> Postprocess().
// Requests join (AddRequest) and leave (finish, Abort) between any two steps.
// Not thread-safe: the server runs it on one thread and talks to it through queues.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/engine_config.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/swap_space.h"
#include "kv/kv_cache_manager.h"
#include "model/model.h"
#include "sampling/sampling_params.h"
#include "sampling/seed_source.h"
#include "tokenizer/tokenizer.h"

namespace kvserve {

struct EngineRequest {
  uint64_t id = 0;               // caller's id, unique among unfinished requests
  std::vector<int32_t> prompt;   // token ids (BOS included when the model wants one)
  SamplingParams params;
  int priority = 0;              // lower runs sooner
  uint64_t cache_salt = 0;       // requests with different salts never share cached blocks
};

// What one sequence produced in one step.
struct SequenceDelta {
  int index = 0;
  std::vector<int32_t> new_tokens;
  std::string new_text;                   // stop strings never appear
  std::vector<LogprobInfo> new_logprobs;  // when params.logprobs is set
  bool finished = false;
  std::string finish_reason;  // "stop", "length", "abort"
};

struct FinalSequence {
  int index = 0;
  std::vector<int32_t> tokens;  // generated tokens
  std::string text;
  std::vector<LogprobInfo> logprobs;
  double cumulative_logprob = 0.0;
  std::string finish_reason;
};

struct RequestOutput {
  uint64_t id = 0;
  std::vector<SequenceDelta> deltas;  // sequences that progressed this step (not with best_of > n)
  bool finished = false;
  // When finished: the n returned sequences (best of best_of), best first.
  std::vector<FinalSequence> final_sequences;
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache
  int completion_tokens = 0;     // over all best_of sequences
  double first_token_time = 0;   // seconds from submission (for TTFT)
};

struct EngineStats {
  int64_t steps = 0;
  int64_t preemptions_recompute = 0;
  int64_t preemptions_swap = 0;
  int64_t swapped_out_blocks = 0;
  int64_t swapped_in_blocks = 0;
  int64_t prompt_tokens = 0;      // prompt tokens of admitted requests
  int64_t computed_tokens = 0;    // tokens run through the model (incl. recompute)
  int64_t generated_tokens = 0;
  int64_t finished_requests = 0;
  int64_t aborted_requests = 0;
  int32_t peak_kv_blocks_used = 0;
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  KvStats kv;
};

class Engine {
 public:
  // `backend` runs the model; nullptr = a CPU backend sized from config.
  // REQUIRES: model and tokenizer outlive the engine.
  static StatusOr<std::unique_ptr<Engine>> Create(const Model& model, const Tokenizer& tokenizer, const EngineConfig& config,
                                                  std::unique_ptr<Backend> backend = nullptr);

  // InvalidArgument: bad params, empty prompt, token ids out of range, prompt too long
  // for the context or for the whole KV cache (the message says the numbers).
  // ResourceExhausted: the waiting queue is full (max_waiting_requests).
  Status AddRequest(EngineRequest request);

  // Cancels a request wherever it is; its blocks are freed now. False if unknown.
  bool Abort(uint64_t id);

  // One iteration. Errors come from the backend (fatal for the engine).
  StatusOr<std::vector<RequestOutput>> Step();

  bool HasUnfinished() const { return !groups_.empty(); }
  size_t num_unfinished() const { return groups_.size(); }
  EngineStats Stats() const;
  const KvCacheManager& kv() const { return *kv_; }
  const EngineConfig& config() const { return config_; }
  const Model& model() const { return model_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  int max_context() const { return max_context_; }

  // Aborts via KV_CHECK if scheduler, sequences and KV manager disagree.
  void CheckInvariants() const;

  Engine(const Model& model, const Tokenizer& tokenizer, const EngineConfig& config, std::unique_ptr<Backend> backend,
         std::unique_ptr<KvCacheManager> kv);
  ~Engine();

 private:
  struct Group;
  Status Execute(const SchedulerOutput& out);
  void Postprocess(const SchedulerOutput& out, std::vector<RequestOutput>& outputs);
  // Samples the next token of `seq` from `logits`; returns false when it finished.
  void SampleInto(Sequence* seq, std::span<const float> logits, RequestOutput& ro);
  void FinishSequence(Sequence* seq, const std::string& reason);
  void ForkChildren(Group& g, std::span<const float> logits, RequestOutput& ro);
  RequestOutput& OutputFor(Group& g, std::map<uint64_t, size_t>& index, std::vector<RequestOutput>& outputs);
  void CompleteGroup(Group& g, RequestOutput& ro);

  const Model& model_;
  const Tokenizer& tokenizer_;
  EngineConfig config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<SwapSpace> swap_;
  std::unique_ptr<Scheduler> scheduler_;
  SeedSource seeds_;
  SamplerWorkspace workspace_;
  std::map<uint64_t, std::unique_ptr<Group>> groups_;
  uint64_t next_kv_id_ = 1;
  uint64_t next_arrival_ = 0;
  int max_context_ = 0;
  EngineStats stats_;
  std::vector<float> logits_;
  BatchDescriptor batch_;
  std::vector<uint8_t> block_buffer_;
};

}  // namespace kvserve
