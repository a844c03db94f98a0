#include "cli/engine_options.h"

#include <cctype>

namespace kvserve::cli {

void AddEngineOptions(CLI::App* cmd, EngineOptionValues& v) {
  EngineConfig& c = v.config;
  cmd->add_option("--block-size", c.block_size, "KV block size in tokens")->capture_default_str();
  cmd->add_option("--num-kv-blocks", c.num_kv_blocks, "KV blocks in the pool (overrides --kv-cache-memory)");
  cmd->add_option("--kv-cache-memory", v.kv_cache_memory, "KV pool size in bytes (suffix K/M/G), default 512M");
  cmd->add_option("--max-num-seqs", c.max_num_seqs, "Most sequences running at once")->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", c.max_num_batched_tokens, "Token budget per step")->capture_default_str();
  cmd->add_option("--long-prefill-threshold", c.long_prefill_threshold, "Most prompt tokens one request prefills per step (0 = budget)");
  cmd->add_option("--preemption-mode", v.preemption_mode, "recompute, swap or auto")->capture_default_str();
  cmd->add_option("--swap-space", v.swap_space, "Host swap space for preempted requests (suffix K/M/G), default 256M");
  cmd->add_flag("--enable-prefix-caching,!--no-prefix-caching", c.enable_prefix_caching, "Reuse cached KV of shared prefixes");
  cmd->add_option("--threads", c.threads, "CPU threads")->capture_default_str();
  cmd->add_option("--max-waiting-requests", c.max_waiting_requests, "Bound of the waiting queue")->capture_default_str();
  cmd->add_flag("--reference", c.reference_precision, "float32 reference kernels instead of the fast path");
  AddKvCacheDTypeOption(cmd, v.kv_cache_dtype);
  AddWeightMemoryOption(cmd, v.weights_memory_name);
}

void AddKvCacheDTypeOption(CLI::App* cmd, std::string& name) {
  cmd->add_option("--kv-cache-dtype", name,
                  "KV cache element type: f16 (half the memory of f32, the fast path's default), f32 (the --reference "
                  "path's default), or auto")
      ->check(CLI::IsMember({"auto", "f32", "f16"}))
      ->capture_default_str();
}

StatusOr<KvCacheDType> ResolveKvCacheDType(const std::string& name, bool reference) {
  if (name == "auto") return reference ? KvCacheDType::kF32 : KvCacheDType::kF16;
  return ParseKvCacheDType(name, "--kv-cache-dtype");
}

void AddWeightMemoryOption(CLI::App* cmd, std::string& name) {
  cmd->add_option("--weights-memory", name,
                  "huge-pages: copy the weights into 2 MiB pages once at load (faster decode, private memory); "
                  "mapped: read them in place from the file's mapping (shared page cache, no copy)")
      ->check(CLI::IsMember({"huge-pages", "mapped"}))
      ->capture_default_str();
}

StatusOr<size_t> ParseByteSize(const std::string& s, const char* option) {
  if (s.empty()) return Status::InvalidArgument(std::string(option) + ": empty size");
  size_t i = 0;
  unsigned long long v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    v = v * 10 + (s[i] - '0');
    if (v > (1ull << 50)) return Status::InvalidArgument(std::string(option) + ": size too large: " + s);
    ++i;
  }
  if (i == 0) return Status::InvalidArgument(std::string(option) + ": not a size: '" + s + "'");
  std::string suffix = s.substr(i);
  unsigned long long mult = 1;
  if (suffix == "" || suffix == "B") mult = 1;
  else if (suffix == "K" || suffix == "KiB" || suffix == "k") mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB" || suffix == "m") mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB" || suffix == "g") mult = 1ull << 30;
  else return Status::InvalidArgument(std::string(option) + ": unknown size suffix '" + suffix + "' (use K, M or G)");
  return static_cast<size_t>(v * mult);
}

Status FinishEngineOptions(EngineOptionValues& v) {
  if (!v.kv_cache_memory.empty()) {
    KV_ASSIGN_OR_RETURN(v.config.kv_cache_memory, ParseByteSize(v.kv_cache_memory, "--kv-cache-memory"));
  }
  if (!v.swap_space.empty()) {
    KV_ASSIGN_OR_RETURN(v.config.swap_space, ParseByteSize(v.swap_space, "--swap-space"));
  }
  KV_ASSIGN_OR_RETURN(v.config.preemption_mode, ParsePreemptionMode(v.preemption_mode));
  KV_ASSIGN_OR_RETURN(v.weights_memory, ParseWeightMemory(v.weights_memory_name));
  KV_ASSIGN_OR_RETURN(v.config.kv_cache_dtype, ResolveKvCacheDType(v.kv_cache_dtype, v.config.reference_precision));
  return v.config.Validate();
}

}  // namespace kvserve::cli
