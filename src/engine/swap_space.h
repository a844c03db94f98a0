// Host-memory swap space for preempted requests: fixed-size slots, one KV block image each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace kvserve {

class SwapSpace {
 public:
  // capacity_bytes / block_bytes slots (0 slots disables swapping).
  SwapSpace(size_t capacity_bytes, size_t block_bytes);

  // n free slots, or nothing (no side effects) when fewer are free.
  std::optional<std::vector<int32_t>> Allocate(int32_t n);
  void Free(const std::vector<int32_t>& slots);

  uint8_t* slot_data(int32_t slot) { return storage_.data() + static_cast<size_t>(slot) * block_bytes_; }
  int32_t num_slots() const { return num_slots_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  size_t block_bytes() const { return block_bytes_; }

 private:
  size_t block_bytes_;
  int32_t num_slots_;
  std::vector<uint8_t> storage_;  // grown on first use, so an unused swap space costs nothing
  std::vector<int32_t> free_;
};

}  // namespace kvserve
