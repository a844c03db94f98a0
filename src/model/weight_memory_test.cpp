#include "model/weight_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "util/paths.h"

namespace kvserve {
namespace {

// Bytes of every present tensor, by slot, before the copy.
std::vector<std::vector<uint8_t>> Snapshot(Model& m) {
  std::vector<std::vector<uint8_t>> out;
  for (Tensor* t : m.weights.All()) {
    const auto* p = static_cast<const uint8_t*>(t->data);
    out.emplace_back(t->present() ? std::vector<uint8_t>(p, p + t->nbytes) : std::vector<uint8_t>());
  }
  return out;
}

void ExpectCopiedIntact(const std::string& path) {
  auto loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  Model& m = **loaded;
  const std::vector<std::vector<uint8_t>> before = Snapshot(m);
  std::map<const void*, int> sharing;  // tied tensors: equal pointers before must stay equal
  for (Tensor* t : m.weights.All())
    if (t->present()) sharing[t->data]++;
  const bool tied = m.weights.output.data == m.weights.tok_embeddings.data;

  ASSERT_TRUE(CopyWeightsToHugePages(m).ok());
  ASSERT_NE(m.weight_region, nullptr);
  const uint8_t* lo = m.weight_region->data();
  const uint8_t* hi = lo + m.weight_region->size();
  std::vector<Tensor*> all = m.weights.All();
  std::map<const void*, int> after_sharing;
  for (size_t i = 0; i < all.size(); ++i) {
    const Tensor& t = *all[i];
    if (!t.present()) {
      EXPECT_TRUE(before[i].empty());
      continue;
    }
    const auto* p = static_cast<const uint8_t*>(t.data);
    ASSERT_TRUE(p >= lo && p + t.nbytes <= hi) << t.name << " is not in the region";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << t.name;
    ASSERT_EQ(t.nbytes, before[i].size());
    EXPECT_EQ(std::memcmp(p, before[i].data(), t.nbytes), 0) << t.name;
    after_sharing[t.data]++;
  }
  EXPECT_EQ(after_sharing.size(), sharing.size()) << "tied tensors must keep sharing one copy";
  EXPECT_EQ(m.weights.output.data == m.weights.tok_embeddings.data, tied);
  // Copying again is a no-op.
  const void* first = m.weights.layers[0].wq.data;
  ASSERT_TRUE(CopyWeightsToHugePages(m).ok());
  EXPECT_EQ(m.weights.layers[0].wq.data, first);
}

TEST(CopyWeightsToHugePages, GgufTensorsKeepTheirBytes) { ExpectCopiedIntact(SharedPath("models/stories260K/stories260K.gguf")); }

TEST(CopyWeightsToHugePages, HfDirectoryTensorsKeepTheirBytes) { ExpectCopiedIntact(SharedPath("models/stories260K/hf")); }

// Not enough memory for the copy: refused with a clear error, nothing changed.
TEST(CopyWeightsToHugePages, RefusesACopyLargerThanTheAvailableMemory) {
  auto loaded = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(loaded.ok());
  Model& m = **loaded;
  const void* wq = m.weights.layers[0].wq.data;
  const Status s = CopyWeightsToHugePages(m, 100 << 10);
  ASSERT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("only 0 MiB of memory is available"), std::string::npos) << s.message();
  EXPECT_EQ(m.weight_region, nullptr);
  EXPECT_EQ(m.weights.layers[0].wq.data, wq);
  EXPECT_GT(AvailableMemoryBytes(), 0);
}

// Re-laying out weights in place is only for this process's own copy: writing into the
// file mapping would fault (it is read-only) or change the file.
TEST(SplitQ8_0RowsDeathTest, RefusesWeightsStillInTheFileMapping) {
  auto loaded = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_DEATH(SplitQ8_0Rows(**loaded), "copied out of the file mapping");
}

TEST(ParseWeightMemory, NamesAndErrors) {
  EXPECT_EQ(*ParseWeightMemory("mapped"), WeightMemory::kMapped);
  EXPECT_EQ(*ParseWeightMemory("huge-pages"), WeightMemory::kHugePages);
  auto bad = ParseWeightMemory("hugepages");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("expected mapped or huge-pages"), std::string::npos);
}

}  // namespace
}  // namespace kvserve
