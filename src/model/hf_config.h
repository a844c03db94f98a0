// Hugging Face config.json -> ModelConfig.
#pragma once

#include <string>

#include "model/model_config.h"
#include "util/status.h"

namespace kvserve {

// Accepts both spellings seen in the wild: rope_theta / torch_dtype (transformers 4)
// and rope_parameters {rope_theta, rope_type, ...} / dtype (transformers 5).
StatusOr<ModelConfig> ParseHfConfig(const std::string& json_text, const std::string& path);
StatusOr<ModelConfig> LoadHfConfig(const std::string& config_json_path);

}  // namespace kvserve
