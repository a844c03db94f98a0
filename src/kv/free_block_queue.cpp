#include "kv/free_block_queue.h"

#include "util/status.h"

namespace kvserve {

FreeBlockQueue::FreeBlockQueue(int32_t num_blocks)
    : sentinel_(num_blocks), prev_(num_blocks + 1, kNotQueued), next_(num_blocks + 1, kNotQueued) {
  KV_CHECK(num_blocks >= 0);
  prev_[sentinel_] = sentinel_;
  next_[sentinel_] = sentinel_;
  for (int32_t b = 0; b < num_blocks; ++b) PushBack(b);
}

void FreeBlockQueue::InsertBetween(int32_t block, int32_t before, int32_t after) {
  prev_[block] = before;
  next_[block] = after;
  next_[before] = block;
  prev_[after] = block;
  ++size_;
}

void FreeBlockQueue::PushFront(int32_t block) {
  KV_CHECK(block >= 0 && block < sentinel_ && !contains(block));
  InsertBetween(block, sentinel_, next_[sentinel_]);
}

void FreeBlockQueue::PushBack(int32_t block) {
  KV_CHECK(block >= 0 && block < sentinel_ && !contains(block));
  InsertBetween(block, prev_[sentinel_], sentinel_);
}

int32_t FreeBlockQueue::PopFront() {
  KV_CHECK(size_ > 0);
  int32_t block = next_[sentinel_];
  Remove(block);
  return block;
}

void FreeBlockQueue::Remove(int32_t block) {
  KV_CHECK(block >= 0 && block < sentinel_ && contains(block));
  next_[prev_[block]] = next_[block];
  prev_[next_[block]] = prev_[block];
  prev_[block] = kNotQueued;
  next_[block] = kNotQueued;
  --size_;
}

std::vector<int32_t> FreeBlockQueue::ToVector() const {
  std::vector<int32_t> out;
  out.reserve(size_);
  for (int32_t b = next_[sentinel_]; b != sentinel_ && static_cast<int32_t>(out.size()) <= size_; b = next_[b]) {
    out.push_back(b);
  }
  return out;
}

bool FreeBlockQueue::WellFormed() const {
  int32_t count = 0;
  int32_t prev = sentinel_;
  for (int32_t b = next_[sentinel_]; b != sentinel_; b = next_[b]) {
    if (b < 0 || b >= sentinel_ || prev_[b] != prev || ++count > size_) return false;
    prev = b;
  }
  if (count != size_ || prev_[sentinel_] != prev) return false;
  int32_t queued = 0;
  for (int32_t b = 0; b < sentinel_; ++b) queued += contains(b) ? 1 : 0;
  return queued == size_;
}

}  // namespace kvserve
