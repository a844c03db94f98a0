// Unit tests pinning the exact behaviour of the paged KV cache: block ids handed
// out, free-queue order, ref counts, eviction order, copies requested.
#include "kv/kv_cache_manager.h"

#include <numeric>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvserve {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<int32_t> Range(int32_t first, int32_t last) {  // [first, last]
  std::vector<int32_t> v(last - first + 1);
  std::iota(v.begin(), v.end(), first);
  return v;
}
std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
std::vector<int32_t> Table(const KvCacheManager& m, RequestId id) {
  auto t = m.BlockTable(id);
  return {t.begin(), t.end()};
}

std::unique_ptr<KvCacheManager> Make(int32_t num_blocks, int32_t block_size = 4, bool caching = true) {
  KvManagerConfig c;
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  c.enable_prefix_caching = caching;
  c.hash_seed = 1234;
  auto m = KvCacheManager::Create(c);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

// Adds a request, applies its prefix hit, allocates and commits the whole prompt.
void Prefill(KvCacheManager& m, RequestId id, const std::vector<int32_t>& tokens, uint64_t salt = 0) {
  m.AddRequest(id, tokens, salt);
  PrefixHit hit = m.GetComputedBlocks(id);
  int32_t n = m.NumTokens(id) - hit.num_tokens;
  ASSERT_TRUE(m.AllocateSlots(id, n, 0, &hit));
  m.TakePendingCopies();
  m.CommitComputed(id, n);
  m.CheckInvariants();
}

TEST(FreeBlockQueue, PushPopRemoveKeepOrder) {
  FreeBlockQueue q(5);
  EXPECT_THAT(q.ToVector(), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(q.PopFront(), 0);
  q.Remove(2);
  EXPECT_THAT(q.ToVector(), ElementsAre(1, 3, 4));
  q.PushFront(0);
  q.PushBack(2);
  EXPECT_THAT(q.ToVector(), ElementsAre(0, 1, 3, 4, 2));
  EXPECT_EQ(q.size(), 5);
  EXPECT_TRUE(q.WellFormed());
  q.Remove(2);
  q.Remove(0);
  EXPECT_THAT(q.ToVector(), ElementsAre(1, 3, 4));
  EXPECT_FALSE(q.contains(0));
  EXPECT_TRUE(q.WellFormed());
}

TEST(BlockPool, LookupVerifiesTokensParentAndExtraKey) {
  BlockPool pool(4, 4);
  int32_t b = pool.AllocateOne();
  EXPECT_EQ(b, 0);
  std::vector<int32_t> toks = {1, 2, 3, 4};
  // A made-up hash stands in for a collision: the pool must not trust it alone.
  ASSERT_TRUE(pool.Cache(b, /*hash=*/77, /*parent=*/5, /*extra=*/9, toks));
  EXPECT_EQ(pool.Lookup(77, 5, 9, toks), 0);
  std::vector<int32_t> other = {1, 2, 3, 5};
  EXPECT_EQ(pool.Lookup(77, 5, 9, other), -1);
  EXPECT_EQ(pool.Lookup(77, 6, 9, toks), -1);
  EXPECT_EQ(pool.Lookup(77, 5, 8, toks), -1);
  EXPECT_EQ(pool.Lookup(78, 5, 9, toks), -1);
  // The same hash cannot be cached twice: the first copy wins.
  int32_t b2 = pool.AllocateOne();
  EXPECT_FALSE(pool.Cache(b2, 77, 5, 9, toks));
  EXPECT_FALSE(pool.is_cached(b2));
  PartialMatch pm = pool.LongestPartialMatch(5, 9, std::vector<int32_t>{1, 2, 7});
  EXPECT_EQ(pm.block, 0);
  EXPECT_EQ(pm.num_tokens, 2);
}

TEST(BlockPool, PartialMatchExaminesOnlyTheMostRecentSiblings) {
  const int n = BlockPool::kMaxPartialCandidates + 8;
  BlockPool pool(n, 4);
  for (int i = 0; i < n; ++i) {
    int32_t b = pool.AllocateOne();
    // Child i of parent 5 starts with token i.
    ASSERT_TRUE(pool.Cache(b, 1000 + i, 5, 0, std::vector<int32_t>{i, 1, 2, 3}));
  }
  // The newest child is found at once; the oldest lies beyond the examined window.
  EXPECT_EQ(pool.LongestPartialMatch(5, 0, std::vector<int32_t>{n - 1, 1, 9}).num_tokens, 2);
  EXPECT_EQ(pool.LongestPartialMatch(5, 0, std::vector<int32_t>{0, 1, 9}).block, -1);
  EXPECT_EQ(pool.CachedChildren(5).size(), static_cast<size_t>(n));
}

TEST(KvCacheManager, CreateRejectsBadConfig) {
  KvManagerConfig c;
  c.num_blocks = 8;
  c.block_size = 0;
  auto m = KvCacheManager::Create(c);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), ::testing::HasSubstr("block_size 0"));
  c.block_size = 257;
  EXPECT_FALSE(KvCacheManager::Create(c).ok());
  c.block_size = 16;
  c.num_blocks = -1;
  EXPECT_FALSE(KvCacheManager::Create(c).ok());
}

TEST(KvCacheManager, HandsOutBlocksFromTheFrontAndFreesTailFirst) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 10));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1, 2));
  EXPECT_EQ(m->NumComputedTokens(1), 10);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(3, 4, 5, 6, 7));
  EXPECT_TRUE(m->pool().is_cached(0));
  EXPECT_TRUE(m->pool().is_cached(1));
  EXPECT_FALSE(m->pool().is_cached(2));  // partially filled: never cached

  m->Free(1);
  m->CheckInvariants();
  // Tail first: uncached block 2 goes to the front, cached 1 then 0 to the back,
  // so the shared head (block 0) is evicted last.
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(2, 3, 4, 5, 6, 7, 1, 0));
  EXPECT_EQ(m->pool().num_cached(), 2);
}

TEST(KvCacheManager, PrefixHitRevivesFreeCachedBlocksAndCountsThem) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 10));
  m->Free(1);

  m->AddRequest(2, Concat(Range(1, 8), {50, 51, 52}));
  PrefixHit hit = m->GetComputedBlocks(2);
  EXPECT_THAT(hit.blocks, ElementsAre(0, 1));
  EXPECT_EQ(hit.num_tokens, 8);
  EXPECT_EQ(hit.partial_src, -1);  // block 2 was never cached
  EXPECT_EQ(hit.num_evictable, 2);
  EXPECT_EQ(hit.num_query_tokens, 11);
  // One new block plus the two free hit blocks leave the free queue.
  EXPECT_EQ(m->NumBlocksNeeded(2, 3, 0, &hit), 3);
  ASSERT_TRUE(m->AllocateSlots(2, 3, 0, &hit));
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1, 2));
  EXPECT_EQ(m->NumComputedTokens(2), 8);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(3, 4, 5, 6, 7));
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  m->CommitComputed(2, 3);
  m->CheckInvariants();
  KvStats s = m->Stats();
  EXPECT_EQ(s.prefix_queries, 2);
  EXPECT_EQ(s.prefix_query_tokens, 10 + 11);
  EXPECT_EQ(s.prefix_hit_tokens, 8);
  EXPECT_DOUBLE_EQ(s.prefix_hit_rate, 8.0 / 21.0);
}

TEST(KvCacheManager, EvictsLeastRecentlyUsedTailFirstAndFailsWithoutSideEffects) {
  auto m = Make(4);
  Prefill(*m, 1, Range(1, 8));
  m->Free(1);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(2, 3, 1, 0));

  Prefill(*m, 2, Range(100, 111));  // 3 blocks: takes 2, 3 and evicts cached block 1
  EXPECT_THAT(Table(*m, 2), ElementsAre(2, 3, 1));
  EXPECT_EQ(m->Stats().evictions, 1);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(0));
  EXPECT_TRUE(m->pool().is_cached(0));

  m->AddRequest(3, Concat(Range(1, 4), {9, 9, 9}));
  PrefixHit hit = m->GetComputedBlocks(3);
  EXPECT_THAT(hit.blocks, ElementsAre(0));
  EXPECT_EQ(hit.partial_src, -1);  // block 1 (tokens 5..8) was evicted
  EXPECT_EQ(hit.num_evictable, 1);
  // Needs 1 new block + reviving block 0, but only block 0 is free: the evictable
  // hit must not be counted as free space.
  EXPECT_EQ(m->NumBlocksNeeded(3, 3, 0, &hit), 2);
  EXPECT_FALSE(m->AllocateSlots(3, 3, 0, &hit));
  EXPECT_THAT(Table(*m, 3), IsEmpty());
  EXPECT_EQ(m->NumComputedTokens(3), 0);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(0));
  EXPECT_EQ(m->pool().ref_count(0), 0);
  EXPECT_TRUE(m->pool().is_cached(0));
  EXPECT_EQ(m->Stats().allocation_failures, 1);
  EXPECT_EQ(m->Stats().prefix_queries, 2);  // the failed attempt is not counted
  m->CheckInvariants();

  m->Free(2);  // all three blocks are full and cached: tail first to the back
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(0, 1, 3, 2));
  ASSERT_TRUE(m->AllocateSlots(3, 3, 0, &hit));
  EXPECT_THAT(Table(*m, 3), ElementsAre(0, 1));  // revives 0, evicts the LRU block 1
  EXPECT_EQ(m->Stats().evictions, 2);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(3, 2));
  m->CheckInvariants();
}

TEST(KvCacheManager, ForkSharesBlocksAndCopiesThePartialTailOnce) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 6));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1));
  m->Fork(1, 2);
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1));
  EXPECT_EQ(m->pool().ref_count(0), 2);
  EXPECT_EQ(m->pool().ref_count(1), 2);
  EXPECT_EQ(m->NumComputedTokens(2), 6);
  m->CheckInvariants();

  m->AppendTokens(1, std::vector<int32_t>{7});
  m->AppendTokens(2, std::vector<int32_t>{8});
  ASSERT_TRUE(m->AllocateSlots(1, 1));  // parent writes into the shared tail: copy
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 2));
  EXPECT_EQ(m->pool().ref_count(1), 2);  // the child and the pending copy's pin
  ASSERT_TRUE(m->AllocateSlots(2, 1));   // the child is now the only user: no second copy
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1));
  m->CheckInvariants();
  EXPECT_THAT(m->TakePendingCopies(), ElementsAre(BlockCopy{1, 2}));
  EXPECT_EQ(m->pool().ref_count(1), 1);
  m->CommitComputed(1, 1);
  m->CommitComputed(2, 1);
  EXPECT_EQ(m->Stats().cow_copies, 1);
  m->CheckInvariants();

  // A full shared block is never copied: writes go to a new block.
  m->AppendTokens(1, std::vector<int32_t>{9});
  ASSERT_TRUE(m->AllocateSlots(1, 1));
  m->CommitComputed(1, 1);
  EXPECT_TRUE(m->pool().is_cached(2));  // tokens 5 6 7 9
  m->Fork(1, 3);
  m->AppendTokens(3, std::vector<int32_t>{10});
  ASSERT_TRUE(m->AllocateSlots(3, 1));
  EXPECT_THAT(Table(*m, 3), ElementsAre(0, 2, 3));
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  m->CheckInvariants();
}

TEST(KvCacheManager, RollbackReleasesTailAndUncachesPrivateRewrittenBlock) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 10));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1, 2));
  m->Rollback(1, 4);
  EXPECT_EQ(m->NumTokens(1), 6);
  EXPECT_EQ(m->NumComputedTokens(1), 6);
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1));
  EXPECT_TRUE(m->pool().is_cached(0));
  EXPECT_FALSE(m->pool().is_cached(1));  // tokens 7, 8 are gone: the entry would lie
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(2, 3, 4, 5, 6, 7));
  m->CheckInvariants();

  m->AppendTokens(1, std::vector<int32_t>{70, 71});
  ASSERT_TRUE(m->AllocateSlots(1, 2));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1));  // private and uncached: written in place
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  m->CommitComputed(1, 2);
  EXPECT_TRUE(m->pool().is_cached(1));
  EXPECT_THAT(m->pool().tokens(1), ElementsAre(5, 6, 70, 71));
  m->CheckInvariants();
}

TEST(KvCacheManager, RollbackIntoSharedCachedBlockCopiesOnWrite) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 8));
  m->Fork(1, 2);
  m->Rollback(1, 2);
  EXPECT_TRUE(m->pool().is_cached(1));  // request 2 still relies on it
  m->AppendTokens(1, std::vector<int32_t>{40, 41});
  ASSERT_TRUE(m->AllocateSlots(1, 2));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 2));
  EXPECT_THAT(m->TakePendingCopies(), ElementsAre(BlockCopy{1, 2}));
  m->CommitComputed(1, 2);
  EXPECT_THAT(m->pool().tokens(2), ElementsAre(5, 6, 40, 41));
  EXPECT_THAT(m->pool().tokens(1), ElementsAre(5, 6, 7, 8));
  m->CheckInvariants();
}

TEST(KvCacheManager, PartialBlockReuseCopiesTheMatchingHead) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 9));
  m->Free(1);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(2, 3, 4, 5, 6, 7, 1, 0));

  m->AddRequest(2, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 99, 99, 42});
  PrefixHit hit = m->GetComputedBlocks(2);
  EXPECT_THAT(hit.blocks, ElementsAre(0));
  EXPECT_EQ(hit.partial_src, 1);
  EXPECT_EQ(hit.partial_tokens, 2);
  EXPECT_EQ(hit.num_tokens, 6);
  EXPECT_EQ(hit.num_evictable, 2);
  EXPECT_EQ(m->NumBlocksNeeded(2, 3, 0, &hit), 4);
  ASSERT_TRUE(m->AllocateSlots(2, 3, 0, &hit));
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 2, 3));
  EXPECT_EQ(m->NumComputedTokens(2), 6);
  m->CheckInvariants();
  EXPECT_THAT(m->TakePendingCopies(), ElementsAre(BlockCopy{1, 2}));
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(4, 5, 6, 7, 1));
  m->CommitComputed(2, 3);
  KvStats s = m->Stats();
  EXPECT_EQ(s.partial_reuse_copies, 1);
  EXPECT_EQ(s.partial_reuse_tokens, 2);
  EXPECT_EQ(s.prefix_hit_tokens, 6);
  m->CheckInvariants();
}

TEST(KvCacheManager, IdenticalPromptLeavesOneTokenToCompute) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 8));
  m->AddRequest(2, Range(1, 8));
  PrefixHit hit = m->GetComputedBlocks(2);
  EXPECT_THAT(hit.blocks, ElementsAre(0));
  EXPECT_EQ(hit.partial_src, 1);
  EXPECT_EQ(hit.partial_tokens, 3);
  EXPECT_EQ(hit.num_tokens, 7);
  EXPECT_EQ(hit.num_evictable, 0);  // request 1 still holds them
}

TEST(KvCacheManager, CacheSaltSeparatesCaches) {
  auto m = Make(8);
  Prefill(*m, 1, Range(1, 9), /*salt=*/1);
  m->AddRequest(2, Range(1, 9), /*extra_key=*/2);
  EXPECT_EQ(m->GetComputedBlocks(2).num_tokens, 0);
  m->AddRequest(3, Range(1, 9), /*extra_key=*/1);
  EXPECT_EQ(m->GetComputedBlocks(3).num_tokens, 8);
}

TEST(KvCacheManager, SamePrefixPrefilledTwiceInOneStepIsStoredOnce) {
  auto m = Make(8);
  for (RequestId id : {1, 2}) {
    m->AddRequest(id, Range(1, 9));
    PrefixHit hit = m->GetComputedBlocks(id);
    EXPECT_EQ(hit.num_tokens, 0);  // nothing is computed yet in this step
    ASSERT_TRUE(m->AllocateSlots(id, 9, 0, &hit));
  }
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1, 2));
  EXPECT_THAT(Table(*m, 2), ElementsAre(3, 4, 5));
  m->CommitComputed(1, 9);
  m->CommitComputed(2, 9);
  // Request 2's full blocks are swapped for request 1's cached ones.
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1, 5));
  EXPECT_EQ(m->pool().ref_count(0), 2);
  EXPECT_EQ(m->pool().ref_count(1), 2);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(4, 3, 6, 7));
  EXPECT_EQ(m->Stats().dedup_blocks, 2);
  EXPECT_EQ(m->Stats().used_blocks, 4);
  m->CheckInvariants();
}

TEST(KvCacheManager, PrefixCachingOffNeverShares) {
  auto m = Make(8, 4, /*caching=*/false);
  Prefill(*m, 1, Range(1, 9));
  m->AddRequest(2, Range(1, 9));
  PrefixHit hit = m->GetComputedBlocks(2);
  EXPECT_EQ(hit.num_tokens, 0);
  EXPECT_EQ(m->pool().num_cached(), 0);
  m->Free(1);
  EXPECT_THAT(m->pool().FreeQueueOrder(), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
}

TEST(KvCacheManager, LookaheadReservesSlotsAndStatsCountFragmentation) {
  auto m = Make(8);
  m->AddRequest(1, Range(1, 10));
  ASSERT_TRUE(m->AllocateSlots(1, 10, /*lookahead=*/3));
  EXPECT_EQ(m->BlockTable(1).size(), 4u);  // 13 slots
  m->CommitComputed(1, 10);
  KvStats s = m->Stats();
  EXPECT_EQ(s.used_blocks, 4);
  EXPECT_EQ(s.allocated_slots, 16);
  EXPECT_EQ(s.filled_slots, 10);
  EXPECT_DOUBLE_EQ(s.internal_fragmentation, 6.0 / 16.0);
  EXPECT_EQ(s.cached_blocks, 2);
  EXPECT_EQ(s.peak_used_blocks, 4);
  // Shared blocks count once.
  m->Fork(1, 2);
  s = m->Stats();
  EXPECT_EQ(s.used_blocks, 4);
  EXPECT_EQ(s.filled_slots, 10);
  m->CheckInvariants();
}

}  // namespace
}  // namespace kvserve
