// Chained hashes of full KV blocks, for prefix caching.
//
// A block's hash covers its parent's hash, the extra key (cache salt, adapter id)
// and its token ids, so equal hashes mean equal prefixes up to a 64-bit collision;
// the block pool therefore verifies every hit against the stored tokens.
#pragma once

#include <cstdint>
#include <span>

namespace kvserve {

using BlockHash = uint64_t;

class BlockHasher {
 public:
  // The seed makes hashes differ per process/config, so hash values leaked from one
  // deployment cannot be used to probe another's cache.
  explicit BlockHasher(uint64_t seed);

  // The "parent hash" of the first block of every sequence.
  BlockHash root() const { return root_; }

  // REQUIRES: tokens.size() <= kMaxBlockSize.
  BlockHash Hash(BlockHash parent, uint64_t extra_key, std::span<const int32_t> tokens) const;

  static constexpr int kMaxBlockSize = 256;

 private:
  uint64_t seed_;
  BlockHash root_;
};

}  // namespace kvserve
