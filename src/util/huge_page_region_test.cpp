#include "util/huge_page_region.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

namespace kvserve {
namespace {

// "always [madvise] never": huge pages can be asked for unless "never" is selected.
bool KernelOffersHugePages() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return f.good() && s.find("[never]") == std::string::npos;
}

TEST(HugePageRegion, WholeAlignedHugePagesThatHoldWhatIsWritten) {
  auto r = HugePageRegion::Allocate(5 << 20);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  HugePageRegion& region = **r;
  EXPECT_EQ(region.size(), size_t{6} << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(region.data()) % HugePageRegion::kHugePage, 0u);
  for (size_t i = 0; i < region.size(); ++i) region.data()[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < region.size(); i += 4093) ASSERT_EQ(region.data()[i], static_cast<uint8_t>(i * 7)) << i;
  if (KernelOffersHugePages()) EXPECT_TRUE(region.advised());
  // smaps names the mapping (the figure itself depends on free 2 MiB ranges).
  EXPECT_GE(region.HugeBytes(), 0);
  EXPECT_LE(region.HugeBytes(), static_cast<int64_t>(region.size()));
}

TEST(HugePageRegion, ZeroSizeIsAnError) {
  auto r = HugePageRegion::Allocate(0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace kvserve
