// The tokens a sequence has seen, in the form the penalties need:
// the distinct prompt tokens (repetition penalty) and per-token counts of the
// generated ones (repetition, presence and frequency penalties).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace kvserve {

class TokenHistory {
 public:
  TokenHistory() = default;
  explicit TokenHistory(std::span<const int32_t> prompt);

  void AddOutput(int32_t token);

  // Sorted, distinct.
  std::span<const int32_t> prompt_tokens() const { return prompt_unique_; }
  bool InPrompt(int32_t token) const;
  // Generated token -> how many times it was generated.
  const std::unordered_map<int32_t, int>& output_counts() const { return output_counts_; }

 private:
  std::vector<int32_t> prompt_unique_;
  std::unordered_map<int32_t, int> output_counts_;
};

}  // namespace kvserve
