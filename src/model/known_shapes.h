// Shapes of well-known models, for capacity planning without the weights
// (`kvserve kv-sim --shape`, the synth tool). Values are the published configs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"
#include "util/status.h"

namespace kvserve {

// Error (not found) lists the known names.
StatusOr<ModelConfig> KnownShape(std::string_view name);
std::vector<std::string> KnownShapeNames();

}  // namespace kvserve
