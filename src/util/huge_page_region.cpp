#include "util/huge_page_region.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace kvserve {

StatusOr<std::unique_ptr<HugePageRegion>> HugePageRegion::Allocate(size_t size) {
  const size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
  if (rounded == 0) return Status::InvalidArgument("HugePageRegion: zero size");
  // One extra huge page of address space so the data can start on a 2 MiB boundary
  // (a huge page must be aligned in virtual memory as well as physical).
  const size_t mapping_size = rounded + kHugePage;
  void* p = ::mmap(nullptr, mapping_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return Status::ResourceExhausted(fmt::format("cannot reserve {} MiB for the weights: {}", mapping_size >> 20, std::strerror(errno)));
  auto* mapping = static_cast<uint8_t*>(p);
  auto* data = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(mapping) + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1));
  const bool advised = ::madvise(data, rounded, MADV_HUGEPAGE) == 0;
  return std::unique_ptr<HugePageRegion>(new HugePageRegion(mapping, mapping_size, data, rounded, advised));
}

HugePageRegion::~HugePageRegion() { ::munmap(mapping_, mapping_size_); }

int64_t HugePageRegion::HugeBytes() const {
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return -1;
  const auto begin = reinterpret_cast<uintptr_t>(mapping_);
  std::string line;
  bool ours = false;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    // Mapping header lines look like "7f12a0000000-7f12a8000000 rw-p ...".
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      ours = begin >= lo && begin < hi;
      continue;
    }
    long kb = 0;
    if (ours && std::sscanf(line.c_str(), "AnonHugePages: %ld kB", &kb) == 1) return int64_t{kb} << 10;
  }
  return -1;
}

}  // namespace kvserve
