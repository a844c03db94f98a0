#include "sampling/token_history.h"

#include <algorithm>

namespace kvserve {

TokenHistory::TokenHistory(std::span<const int32_t> prompt) : prompt_unique_(prompt.begin(), prompt.end()) {
  std::sort(prompt_unique_.begin(), prompt_unique_.end());
  prompt_unique_.erase(std::unique(prompt_unique_.begin(), prompt_unique_.end()), prompt_unique_.end());
  prompt_unique_.shrink_to_fit();
}

void TokenHistory::AddOutput(int32_t token) { ++output_counts_[token]; }

bool TokenHistory::InPrompt(int32_t token) const {
  return std::binary_search(prompt_unique_.begin(), prompt_unique_.end(), token);
}

}  // namespace kvserve
