#include "engine/engine_config.h"

#include <fmt/format.h>

namespace kvserve {

Status EngineConfig::Validate() const {
  auto range = [](const char* name, long long v, long long lo, long long hi) -> Status {
    if (v < lo || v > hi) return Status::InvalidArgument(fmt::format("{} must be in [{}, {}], got {}", name, lo, hi, v));
    return Status::Ok();
  };
  KV_RETURN_IF_ERROR(range("block_size", block_size, 1, 256));
  KV_RETURN_IF_ERROR(range("num_kv_blocks", num_kv_blocks, 0, 1 << 26));
  KV_RETURN_IF_ERROR(range("max_num_seqs", max_num_seqs, 1, 1 << 16));
  KV_RETURN_IF_ERROR(range("max_num_batched_tokens", max_num_batched_tokens, 1, 1 << 20));
  KV_RETURN_IF_ERROR(range("long_prefill_threshold", long_prefill_threshold, 0, 1 << 20));
  KV_RETURN_IF_ERROR(range("threads", threads, 1, 1024));
  KV_RETURN_IF_ERROR(range("max_waiting_requests", max_waiting_requests, 1, 1 << 24));
  KV_RETURN_IF_ERROR(range("priority_aging_steps", priority_aging_steps, 0, 1 << 30));
  if (num_kv_blocks == 0 && kv_cache_memory == 0) return Status::InvalidArgument("kv_cache_memory must be > 0 when num_kv_blocks is 0");
  return Status::Ok();
}

StatusOr<PreemptionMode> ParsePreemptionMode(const std::string& s) {
  if (s == "recompute") return PreemptionMode::kRecompute;
  if (s == "swap") return PreemptionMode::kSwap;
  if (s == "auto") return PreemptionMode::kAuto;
  return Status::InvalidArgument("preemption mode must be recompute, swap or auto, got '" + s + "'");
}

const char* PreemptionModeName(PreemptionMode m) {
  switch (m) {
    case PreemptionMode::kRecompute: return "recompute";
    case PreemptionMode::kSwap: return "swap";
    case PreemptionMode::kAuto: return "auto";
  }
  return "?";
}

}  // namespace kvserve
