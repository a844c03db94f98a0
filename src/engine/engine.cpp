#include "engine/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "backend/cpu/cpu_backend.h"
#include "sampling/best_of.h"

namespace kvserve {

struct Engine::Group {
  EngineRequest request;
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::chrono::steady_clock::time_point submitted;
  double first_token_time = -1;
  int cached_prompt_tokens = -1;
  bool forked = false;
};

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

StatusOr<std::unique_ptr<Engine>> Engine::Create(const Model& model, const Tokenizer& tokenizer, const EngineConfig& config,
                                                 std::unique_ptr<Backend> backend) {
  KV_RETURN_IF_ERROR(config.Validate());
  const size_t block_bytes = KvBlockBytes(model.config, config.block_size, config.kv_cache_dtype);
  int num_blocks = config.num_kv_blocks > 0 ? config.num_kv_blocks : static_cast<int>(config.kv_cache_memory / block_bytes);
  if (backend) {
    num_blocks = backend->kv_config().num_blocks;
    if (backend->kv_config().block_size != config.block_size)
      return Status::InvalidArgument(fmt::format("backend block size {} differs from engine block size {}",
                                                 backend->kv_config().block_size, config.block_size));
  }
  if (num_blocks < 1)
    return Status::InvalidArgument(fmt::format("KV cache memory {} bytes holds no block of {} bytes", config.kv_cache_memory, block_bytes));
  if (!backend) {
    CpuBackendConfig bcfg;
    bcfg.kv.block_size = config.block_size;
    bcfg.kv.num_blocks = num_blocks;
    bcfg.kv.dtype = config.kv_cache_dtype;
    bcfg.num_threads = config.threads;
    bcfg.precision = config.reference_precision ? CpuBackendConfig::Precision::kReference : CpuBackendConfig::Precision::kFast;
    KV_ASSIGN_OR_RETURN(backend, CreateCpuBackend(model, bcfg));
  }
  KvManagerConfig kcfg;
  kcfg.num_blocks = num_blocks;
  kcfg.block_size = config.block_size;
  kcfg.enable_prefix_caching = config.enable_prefix_caching;
  kcfg.enable_partial_block_reuse = config.enable_prefix_caching;
  kcfg.bytes_per_block = backend->BlockBytes();
  KV_ASSIGN_OR_RETURN(std::unique_ptr<KvCacheManager> kv, KvCacheManager::Create(kcfg));
  return std::make_unique<Engine>(model, tokenizer, config, std::move(backend), std::move(kv));
}

Engine::Engine(const Model& model, const Tokenizer& tokenizer, const EngineConfig& config, std::unique_ptr<Backend> backend,
               std::unique_ptr<KvCacheManager> kv)
    : model_(model), tokenizer_(tokenizer), config_(config), backend_(std::move(backend)), kv_(std::move(kv)) {
  size_t swap_bytes = config_.preemption_mode == PreemptionMode::kRecompute ? 0 : config_.swap_space;
  swap_ = std::make_unique<SwapSpace>(swap_bytes, backend_->BlockBytes());
  scheduler_ = std::make_unique<Scheduler>(config_, kv_.get(), swap_.get());
  max_context_ = model_.config.max_context;
  block_buffer_.resize(backend_->BlockBytes());
}

Engine::~Engine() = default;

Status Engine::AddRequest(EngineRequest request) {
  if (groups_.count(request.id)) return Status::InvalidArgument(fmt::format("request id {} is already in use", request.id));
  const int vocab = model_.config.vocab_size;
  KV_RETURN_IF_ERROR(request.params.Validate(vocab));
  if (request.prompt.empty()) return Status::InvalidArgument("the prompt is empty (no tokens)");
  for (int32_t t : request.prompt)
    if (t < 0 || t >= vocab) return Status::InvalidArgument(fmt::format("prompt token id {} is out of range [0, {})", t, vocab));
  const int prompt_len = static_cast<int>(request.prompt.size());
  const int capacity = kv_->config().num_blocks * kv_->block_size();
  const int limit = std::min(max_context_, capacity);
  if (prompt_len >= max_context_)
    return Status::InvalidArgument(fmt::format(
        "the prompt has {} tokens but the model's context is {} tokens (at least one token must be generated)", prompt_len,
        max_context_));
  if (prompt_len >= capacity)
    return Status::InvalidArgument(
        fmt::format("the prompt has {} tokens but the whole KV cache holds {} tokens", prompt_len, capacity));
  if (request.params.max_tokens && prompt_len + *request.params.max_tokens > max_context_)
    return Status::InvalidArgument(fmt::format(
        "this model's maximum context length is {} tokens, but {} tokens were requested ({} in the prompt, {} to generate)",
        max_context_, prompt_len + *request.params.max_tokens, prompt_len, *request.params.max_tokens));
  if (request.params.max_tokens && prompt_len + *request.params.max_tokens > capacity)
    return Status::InvalidArgument(fmt::format(
        "the request needs up to {} tokens of KV cache ({} in the prompt, {} to generate) but the whole cache holds {} tokens",
        prompt_len + *request.params.max_tokens, prompt_len, *request.params.max_tokens, capacity));
  if (static_cast<int>(scheduler_->num_waiting()) >= config_.max_waiting_requests)
    return Status::ResourceExhausted(fmt::format("the waiting queue is full ({} requests)", config_.max_waiting_requests));

  auto g = std::make_unique<Group>();
  g->submitted = std::chrono::steady_clock::now();
  // Generation never runs past the context or the KV pool.
  if (!request.params.max_tokens || prompt_len + *request.params.max_tokens > limit) request.params.max_tokens = limit - prompt_len;
  std::optional<int32_t> eos;
  if (tokenizer_.eos_id() >= 0) eos = tokenizer_.eos_id();
  std::vector<RequestSampler> samplers = MakeSequenceSamplers(request.params, request.prompt, vocab, eos, seeds_);
  const uint64_t arrival = next_arrival_++;
  for (size_t i = 0; i < samplers.size(); ++i) {
    auto seq = std::make_unique<Sequence>();
    seq->kv_id = next_kv_id_++;
    seq->group_id = request.id;
    seq->index = static_cast<int>(i);
    seq->tokens = request.prompt;
    seq->prompt_len = prompt_len;
    seq->priority = request.priority;
    seq->arrival = arrival;
    seq->cache_salt = request.cache_salt;
    seq->sampler.emplace(std::move(samplers[i]));
    seq->detok.emplace(&tokenizer_, IncrementalDetokenizer::Options{.skip_special = true, .sequence_start = false});
    if (!request.params.stop.empty()) seq->stop.emplace(request.params.stop);
    seq->state = i == 0 ? SeqState::kWaiting : SeqState::kAwaitFork;
    g->seqs.push_back(std::move(seq));
  }
  g->request = std::move(request);
  scheduler_->Enqueue(g->seqs[0].get());
  groups_.emplace(g->request.id, std::move(g));
  return Status::Ok();
}

bool Engine::Abort(uint64_t id) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return false;
  for (auto& seq : it->second->seqs) scheduler_->Remove(seq.get());
  groups_.erase(it);
  stats_.aborted_requests++;
  return true;
}

Status Engine::Execute(const SchedulerOutput& out) {
  for (const SwapCopy& c : out.swap_out) backend_->ReadBlock(c.block, swap_->slot_data(c.slot));
  for (const SwapCopy& c : out.swap_in) backend_->WriteBlock(c.block, swap_->slot_data(c.slot));
  // Swap slots of swap-ins were already released by the scheduler; their bytes stay
  // intact until the next Allocate, which cannot happen before this point.
  if (!out.copies.empty()) backend_->CopyBlocks(out.copies);
  stats_.swapped_out_blocks += static_cast<int64_t>(out.swap_out.size());
  stats_.swapped_in_blocks += static_cast<int64_t>(out.swap_in.size());
  if (out.scheduled.empty()) return Status::Ok();

  batch_.tokens.clear();
  batch_.positions.clear();
  batch_.seqs.clear();
  batch_.block_tables.clear();
  batch_.logit_rows.clear();
  for (const ScheduledSeq& s : out.scheduled) {
    SequenceSlice slice;
    slice.token_begin = static_cast<int32_t>(batch_.tokens.size());
    slice.num_tokens = s.num_tokens;
    slice.context_len = s.context_len;
    for (int32_t j = 0; j < s.num_tokens; ++j) {
      batch_.tokens.push_back(s.seq->tokens[s.context_len + j]);
      batch_.positions.push_back(s.context_len + j);
    }
    std::span<const int32_t> table = kv_->BlockTable(s.seq->kv_id);
    const int32_t needed = (s.context_len + s.num_tokens + kv_->block_size() - 1) / kv_->block_size();
    KV_CHECK(static_cast<int32_t>(table.size()) >= needed);
    slice.block_table_begin = static_cast<int32_t>(batch_.block_tables.size());
    slice.num_blocks = needed;
    batch_.block_tables.insert(batch_.block_tables.end(), table.begin(), table.begin() + needed);
    batch_.seqs.push_back(slice);
    // Logits are needed only when this chunk reaches the end of the known tokens.
    if (s.context_len + s.num_tokens == static_cast<int32_t>(s.seq->tokens.size()))
      batch_.logit_rows.push_back(slice.token_begin + s.num_tokens - 1);
  }
  stats_.computed_tokens += static_cast<int64_t>(batch_.tokens.size());
  logits_.resize(batch_.logit_rows.size() * static_cast<size_t>(model_.config.vocab_size));
  return backend_->Forward(batch_, logits_);
}

RequestOutput& Engine::OutputFor(Group& g, std::map<uint64_t, size_t>& index, std::vector<RequestOutput>& outputs) {
  auto [it, inserted] = index.emplace(g.request.id, outputs.size());
  if (inserted) {
    outputs.emplace_back();
    outputs.back().id = g.request.id;
    outputs.back().prompt_tokens = static_cast<int>(g.request.prompt.size());
  }
  return outputs[it->second];
}

void Engine::FinishSequence(Sequence* seq, const std::string& reason) {
  seq->finish_reason = reason;
  seq->state = SeqState::kFinished;
  scheduler_->Remove(seq);
}

void Engine::SampleInto(Sequence* seq, std::span<const float> logits, RequestOutput& ro) {
  auto res = seq->sampler->Sample(logits, workspace_);
  if (!res.ok()) {
    // Every token excluded (e.g. logit_bias banned all): end this sequence, keep the others.
    FinishSequence(seq, "stop");
    return;
  }
  const SampleResult& r = *res;
  seq->tokens.push_back(r.token);
  if (seq->in_kv) kv_->AppendTokens(seq->kv_id, std::span<const int32_t>(&r.token, 1));
  stats_.generated_tokens++;
  seq->token_logprobs.push_back(r.logprob);
  if (r.logprobs) seq->logprobs.push_back(*r.logprobs);

  SequenceDelta* delta = nullptr;
  for (auto& d : ro.deltas)
    if (d.index == seq->index) delta = &d;
  if (!delta) {
    ro.deltas.push_back({});
    delta = &ro.deltas.back();
    delta->index = seq->index;
  }
  delta->new_tokens.push_back(r.token);
  if (r.logprobs) delta->new_logprobs.push_back(*r.logprobs);

  std::string piece = seq->detok->Push(r.token);
  std::string finish;
  if (r.finish != FinishReason::kNone) {
    piece += seq->detok->Finish();
    finish = r.finish == FinishReason::kStop ? "stop" : "length";
  }
  if (seq->stop) {
    StopStringMatcher::Result m = seq->stop->Feed(piece);
    piece = std::move(m.text);
    if (m.stop_index) finish = "stop";
    else if (!finish.empty()) piece += seq->stop->Flush();
  }
  seq->text += piece;
  delta->new_text += piece;
  if (!finish.empty()) {
    delta->finished = true;
    delta->finish_reason = finish;
    FinishSequence(seq, finish);
  }
}

void Engine::ForkChildren(Group& g, std::span<const float> logits, RequestOutput& ro) {
  Sequence* parent = g.seqs[0].get();
  for (size_t i = 1; i < g.seqs.size(); ++i) {
    Sequence* child = g.seqs[i].get();
    // Fork before the parent's first sampled token is appended: the child shares
    // exactly the prompt's blocks (full ones shared, the partial tail copy-on-write).
    kv_->Fork(parent->kv_id, child->kv_id);
    child->in_kv = true;
    child->num_computed = parent->num_computed;
    scheduler_->AddRunning(child);
  }
  g.forked = true;
  for (size_t i = 1; i < g.seqs.size(); ++i) SampleInto(g.seqs[i].get(), logits, ro);
}

void Engine::CompleteGroup(Group& g, RequestOutput& ro) {
  ro.finished = true;
  std::vector<SequenceScore> scores;
  for (auto& seq : g.seqs) {
    ro.completion_tokens += seq->num_generated();
    scores.push_back({seq->index, seq->sampler->cumulative_logprob(), seq->num_generated()});
  }
  std::vector<int> best = SelectBestSequences(scores, g.request.params.n);
  for (int idx : best) {
    const Sequence& seq = *g.seqs[idx];
    FinalSequence f;
    f.index = static_cast<int>(ro.final_sequences.size());
    f.tokens.assign(seq.tokens.begin() + seq.prompt_len, seq.tokens.end());
    f.text = seq.text;
    f.logprobs = seq.logprobs;
    f.cumulative_logprob = seq.sampler->cumulative_logprob();
    f.finish_reason = seq.finish_reason;
    ro.final_sequences.push_back(std::move(f));
  }
  ro.cached_prompt_tokens = std::max(g.cached_prompt_tokens, 0);
  ro.first_token_time = g.first_token_time;
  stats_.finished_requests++;
}

void Engine::Postprocess(const SchedulerOutput& out, std::vector<RequestOutput>& outputs) {
  std::map<uint64_t, size_t> index;
  std::vector<Group*> touched;
  size_t logit_row = 0;
  const size_t vocab = static_cast<size_t>(model_.config.vocab_size);
  for (const ScheduledSeq& s : out.scheduled) {
    Sequence* seq = s.seq;
    Group& g = *groups_.at(seq->group_id);
    if (g.cached_prompt_tokens < 0 && seq->index == 0) g.cached_prompt_tokens = s.context_len;
    kv_->CommitComputed(seq->kv_id, s.num_tokens);
    seq->num_computed += s.num_tokens;
    if (seq->num_computed < static_cast<int>(seq->tokens.size())) continue;  // a prefill chunk: nothing to sample yet
    std::span<const float> logits(logits_.data() + logit_row * vocab, vocab);
    ++logit_row;
    RequestOutput& ro = OutputFor(g, index, outputs);
    if (g.first_token_time < 0) g.first_token_time = Since(g.submitted);
    const bool first_sample = seq->index == 0 && !g.forked && g.seqs.size() > 1;
    if (first_sample) ForkChildren(g, logits, ro);
    SampleInto(seq, logits, ro);
    if (std::find(touched.begin(), touched.end(), &g) == touched.end()) touched.push_back(&g);
  }
  for (Group* g : touched) {
    bool done = true;
    for (auto& seq : g->seqs) done = done && seq->state == SeqState::kFinished;
    if (!done) continue;
    RequestOutput& ro = OutputFor(*g, index, outputs);
    CompleteGroup(*g, ro);
    groups_.erase(g->request.id);
  }
}

StatusOr<std::vector<RequestOutput>> Engine::Step() {
  std::vector<RequestOutput> outputs;
  SchedulerOutput out = scheduler_->Schedule();
  stats_.steps++;
  stats_.preemptions_recompute += out.num_preempted_recompute;
  stats_.preemptions_swap += out.num_preempted_swap;
  KV_RETURN_IF_ERROR(Execute(out));
  Postprocess(out, outputs);
  stats_.peak_kv_blocks_used = std::max(stats_.peak_kv_blocks_used, kv_->config().num_blocks - kv_->NumFreeBlocks());
  return outputs;
}

EngineStats Engine::Stats() const {
  EngineStats s = stats_;
  s.kv = kv_->Stats();
  s.num_running = static_cast<int32_t>(scheduler_->num_running());
  s.num_waiting = static_cast<int32_t>(scheduler_->num_waiting());
  return s;
}

void Engine::CheckInvariants() const {
  kv_->CheckInvariants();
  scheduler_->CheckInvariants();
  size_t live = 0;
  for (const auto& [id, g] : groups_)
    for (const auto& seq : g->seqs) live += seq->in_kv ? 1 : 0;
  KV_CHECK(live == scheduler_->num_running());
}

}  // namespace kvserve
