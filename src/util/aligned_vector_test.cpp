#include "util/aligned_vector.h"

#include <cstdint>

#include <gtest/gtest.h>

namespace kvserve {
namespace {

bool OnLine(const void* p) { return reinterpret_cast<uintptr_t>(p) % kCacheLineBytes == 0; }

TEST(AlignedVector, StorageStartsOnACacheLineAtEverySize) {
  // Several live at once, of sizes malloc would place 16 bytes past a line.
  std::vector<AlignedVector<int8_t>> bytes;
  std::vector<AlignedVector<float>> floats;
  for (size_t n : {1, 3, 17, 64, 100, 4095, 70000, 300000}) {
    bytes.emplace_back(n);
    floats.emplace_back(n);
    EXPECT_TRUE(OnLine(bytes.back().data())) << n;
    EXPECT_TRUE(OnLine(floats.back().data())) << n;
  }
  AlignedVector<float> grown;
  for (size_t n = 1; n < 100000; n = n * 3 + 1) {
    grown.resize(n, 1.0f);
    EXPECT_TRUE(OnLine(grown.data())) << n;
    EXPECT_EQ(grown.front(), 1.0f);
    EXPECT_EQ(grown.back(), 1.0f);
  }
  std::vector<AlignedVector<float>> nested(3);
  for (auto& v : nested) {
    v.resize(33);
    EXPECT_TRUE(OnLine(v.data()));
  }
}

}  // namespace
}  // namespace kvserve
