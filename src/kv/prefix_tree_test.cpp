#include "kv/prefix_tree.h"

#include <numeric>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<KvCacheManager> Make() {
  KvManagerConfig c;
  c.num_blocks = 8;
  c.block_size = 4;
  return std::move(KvCacheManager::Create(c)).value();
}

void Prefill(KvCacheManager& m, RequestId id, std::vector<int32_t> tokens, uint64_t salt = 0) {
  m.AddRequest(id, tokens, salt);
  PrefixHit hit = m.GetComputedBlocks(id);
  int32_t n = m.NumTokens(id) - hit.num_tokens;
  ASSERT_TRUE(m.AllocateSlots(id, n, 0, &hit));
  m.TakePendingCopies();
  m.CommitComputed(id, n);
}

TEST(PrefixTree, OrphanAppearsWhenParentEntryIsDroppedAndHealsWhenRecached) {
  auto m = Make();
  std::vector<int32_t> t(12);
  std::iota(t.begin(), t.end(), 1);
  Prefill(*m, 1, t);
  m->Rollback(1, 6);  // releases block 2 (cached, free) and uncaches block 1
  PrefixTree tree = BuildPrefixTree(*m);
  ASSERT_EQ(tree.roots.size(), 1u);
  EXPECT_THAT(tree.roots[0].blocks, ElementsAre(0));
  EXPECT_TRUE(tree.roots[0].children.empty());
  ASSERT_EQ(tree.orphans.size(), 1u);
  EXPECT_THAT(tree.orphans[0].blocks, ElementsAre(2));
  EXPECT_THAT(tree.orphans[0].ref_counts, ElementsAre(0));
  EXPECT_THAT(tree.orphans[0].tokens, ElementsAre(9, 10, 11, 12));
  EXPECT_THAT(PrefixTreeToText(tree), HasSubstr("orphans"));
  EXPECT_EQ(PrefixTreeToJson(tree)["orphans"].size(), 1u);

  // Recomputing tokens 7, 8 recreates block 1's hash: block 2 is reachable again
  // and the chain collapses into one radix node.
  m->AppendTokens(1, std::vector<int32_t>{7, 8});
  ASSERT_TRUE(m->AllocateSlots(1, 2));
  m->CommitComputed(1, 2);
  tree = BuildPrefixTree(*m);
  EXPECT_TRUE(tree.orphans.empty());
  ASSERT_EQ(tree.roots.size(), 1u);
  EXPECT_THAT(tree.roots[0].blocks, ElementsAre(0, 1, 2));
  EXPECT_THAT(tree.roots[0].ref_counts, ElementsAre(1, 1, 0));
  EXPECT_EQ(tree.num_nodes, 1);
  EXPECT_EQ(PrefixTreeToText(tree),
            "prefix cache: 3 cached blocks of 4 tokens, 1 nodes\n"
            "root\n"
            "`-- 3 blocks (12 tokens) ids 0-2 ref 0..1 [1 2 3 4 5 6 7 8 ...]\n");
  m->CheckInvariants();
}

TEST(PrefixTree, BranchesAndSaltsAreSeparateNodes) {
  auto m = Make();
  Prefill(*m, 1, {1, 2, 3, 4, 5, 6, 7, 8, 0});
  Prefill(*m, 2, {1, 2, 3, 4, 9, 9, 9, 9, 0});
  Prefill(*m, 3, {1, 2, 3, 4, 0}, /*salt=*/7);
  PrefixTree tree = BuildPrefixTree(*m);
  ASSERT_EQ(tree.roots.size(), 2u);
  // Most recently cached first: the salted chain, then the shared one.
  EXPECT_EQ(tree.roots[0].extra_key, 7u);
  EXPECT_THAT(tree.roots[1].blocks, ElementsAre(0));
  EXPECT_THAT(tree.roots[1].ref_counts, ElementsAre(2));
  ASSERT_EQ(tree.roots[1].children.size(), 2u);
  EXPECT_THAT(tree.roots[1].children[0].tokens, ElementsAre(9, 9, 9, 9));
  EXPECT_THAT(tree.roots[1].children[1].tokens, ElementsAre(5, 6, 7, 8));
  EXPECT_EQ(tree.num_nodes, 4);
  std::string text = PrefixTreeToText(tree, 4);
  EXPECT_THAT(text, HasSubstr("salt 7"));
  EXPECT_THAT(text, HasSubstr("`-- 1 block (4 tokens) ids 0 ref 2 [1 2 3 4]\n    |-- 1 block (4 tokens) ids 3 ref 1 [9 9 9 9]"));
  nlohmann::json j = PrefixTreeToJson(tree);
  EXPECT_EQ(j["num_nodes"], 4);
  EXPECT_EQ(j["roots"][1]["children"][1]["tokens"], nlohmann::json::array({5, 6, 7, 8}));
}

}  // namespace
}  // namespace kvserve
