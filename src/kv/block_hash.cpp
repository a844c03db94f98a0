#include "kv/block_hash.h"

#include <cstring>

#include <xxhash.h>

#include "util/status.h"

namespace kvserve {

BlockHasher::BlockHasher(uint64_t seed) : seed_(seed) {
  static constexpr char kRootTag[] = "kvserve.kv.root";
  root_ = XXH3_64bits_withSeed(kRootTag, sizeof(kRootTag) - 1, seed_);
}

BlockHash BlockHasher::Hash(BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) const {
  KV_CHECK(tokens.size() <= static_cast<size_t>(kMaxBlockSize));
  // One contiguous buffer keeps this a single XXH3 call (no streaming state).
  unsigned char buf[16 + 4 * kMaxBlockSize];
  std::memcpy(buf, &parent, 8);
  std::memcpy(buf + 8, &extra_key, 8);
  std::memcpy(buf + 16, tokens.data(), tokens.size_bytes());
  return XXH3_64bits_withSeed(buf, 16 + tokens.size_bytes(), seed_);
}

}  // namespace kvserve
