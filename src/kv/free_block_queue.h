// Intrusive doubly linked list of free block ids in eviction order (front = next to
// be handed out). Links live in flat arrays indexed by block id, so push/pop/remove
// are O(1) with no allocation; one sentinel closes the ring.
#pragma once

#include <cstdint>
#include <vector>

namespace kvserve {

class FreeBlockQueue {
 public:
  // Starts with blocks 0..num_blocks-1 queued in ascending order.
  explicit FreeBlockQueue(int32_t num_blocks);

  int32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool contains(int32_t block) const { return prev_[block] != kNotQueued; }

  // REQUIRES: !contains(block).
  void PushFront(int32_t block);
  void PushBack(int32_t block);
  // REQUIRES: !empty().
  int32_t PopFront();
  // REQUIRES: contains(block).
  void Remove(int32_t block);

  // Front to back; for tests, dumps and the invariant checker.
  std::vector<int32_t> ToVector() const;
  // Walks the links both ways; false if they disagree with size() or each other.
  bool WellFormed() const;

 private:
  static constexpr int32_t kNotQueued = -2;
  void InsertBetween(int32_t block, int32_t before, int32_t after);

  int32_t sentinel_;            // == num_blocks: the extra slot closing the ring
  std::vector<int32_t> prev_;   // kNotQueued for blocks not in the queue
  std::vector<int32_t> next_;
  int32_t size_ = 0;
};

}  // namespace kvserve
