// Engine/KV options shared by generate, serve and bench.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine/engine_config.h"

namespace kvserve::cli {

struct EngineOptionValues {
  EngineConfig config;
  std::string kv_cache_memory;  // "512M", "2G", bytes
  std::string swap_space;
  std::string preemption_mode = "auto";
  bool no_prefix_caching = false;
};

void AddEngineOptions(CLI::App* cmd, EngineOptionValues& v);

// Fills v.config from the string options; InvalidArgument on bad values.
Status FinishEngineOptions(EngineOptionValues& v);

// "123", "64K", "512M", "2G" (powers of 1024) -> bytes.
StatusOr<size_t> ParseByteSize(const std::string& s, const char* option);

}  // namespace kvserve::cli
