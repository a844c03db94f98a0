#include "engine/swap_space.h"

#include "util/status.h"

namespace kvserve {

SwapSpace::SwapSpace(size_t capacity_bytes, size_t block_bytes)
    : block_bytes_(block_bytes), num_slots_(block_bytes == 0 ? 0 : static_cast<int32_t>(capacity_bytes / block_bytes)) {
  free_.reserve(num_slots_);
  for (int32_t s = num_slots_ - 1; s >= 0; --s) free_.push_back(s);
}

std::optional<std::vector<int32_t>> SwapSpace::Allocate(int32_t n) {
  if (n > num_free()) return std::nullopt;
  if (storage_.empty() && num_slots_ > 0) storage_.resize(static_cast<size_t>(num_slots_) * block_bytes_);
  std::vector<int32_t> slots(free_.end() - n, free_.end());
  free_.resize(free_.size() - n);
  return slots;
}

void SwapSpace::Free(const std::vector<int32_t>& slots) {
  for (int32_t s : slots) {
    KV_CHECK(s >= 0 && s < num_slots_);
    free_.push_back(s);
  }
  KV_CHECK(static_cast<int32_t>(free_.size()) <= num_slots_);
}

}  // namespace kvserve
