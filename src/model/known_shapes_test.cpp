#include "model/known_shapes.h"

#include <gtest/gtest.h>

namespace kvserve {
namespace {

TEST(KnownShapes, KvRelevantDimensionsMatchPublishedConfigs) {
  struct Want {
    const char* name;
    int layers, kv_heads, head_dim;
  };
  for (Want w : {Want{"llama3-8b", 32, 8, 128}, Want{"llama2-7b", 32, 32, 128}, Want{"tinyllama-1.1b", 22, 4, 64},
                 Want{"qwen2.5-0.5b", 24, 2, 64}, Want{"smollm2-135m", 30, 3, 64}}) {
    auto c = KnownShape(w.name);
    ASSERT_TRUE(c.ok()) << w.name;
    EXPECT_EQ(c->num_layers, w.layers) << w.name;
    EXPECT_EQ(c->num_kv_heads, w.kv_heads) << w.name;
    EXPECT_EQ(c->head_dim, w.head_dim) << w.name;
    EXPECT_EQ(c->hidden_size, c->num_heads * c->head_dim) << w.name;
    EXPECT_EQ(c->name, w.name);
  }
  EXPECT_EQ(KnownShapeNames().size(), 5u);
}

TEST(KnownShapes, UnknownNameListsKnownOnes) {
  auto c = KnownShape("gpt-5");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kNotFound);
  EXPECT_NE(c.status().message().find("'gpt-5'"), std::string::npos);
  EXPECT_NE(c.status().message().find("llama3-8b"), std::string::npos);
}

}  // namespace
}  // namespace kvserve
