// Engine/KV options shared by generate, serve and bench.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine/engine_config.h"
#include "model/weight_memory.h"

namespace kvserve::cli {

struct EngineOptionValues {
  EngineConfig config;
  std::string kv_cache_memory;  // "512M", "2G", bytes
  std::string swap_space;
  std::string preemption_mode = "auto";
  bool no_prefix_caching = false;
  std::string weights_memory_name = "huge-pages";
  WeightMemory weights_memory = WeightMemory::kHugePages;  // from weights_memory_name
  std::string kv_cache_dtype = "auto";
};

// --kv-cache-dtype {auto,f32,f16}: the KV cache's element type.
void AddKvCacheDTypeOption(CLI::App* cmd, std::string& name);
// auto: f16 on the fast path, f32 with --reference (the float32 reference path keeps
// every intermediate in float32 or wider).
StatusOr<KvCacheDType> ResolveKvCacheDType(const std::string& name, bool reference);

// --weights-memory {huge-pages,mapped}: how the loaded weights are held.
void AddWeightMemoryOption(CLI::App* cmd, std::string& name);

void AddEngineOptions(CLI::App* cmd, EngineOptionValues& v);

// Fills v.config from the string options; InvalidArgument on bad values.
Status FinishEngineOptions(EngineOptionValues& v);

// "123", "64K", "512M", "2G" (powers of 1024) -> bytes.
StatusOr<size_t> ParseByteSize(const std::string& s, const char* option);

}  // namespace kvserve::cli
