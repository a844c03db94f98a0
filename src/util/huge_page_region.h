// Anonymous memory the kernel is asked to back with transparent huge pages.
//
// Decode streams every weight once per token. From a file mapping (4 KiB page-cache
// pages) that is one TLB miss and page walk per 4 KiB read; with 2 MiB pages it is one
// per 2 MiB. Where THP is off (`/sys/kernel/mm/transparent_hugepage/enabled` = never)
// the region is ordinary memory and still works.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "util/status.h"

namespace kvserve {

class HugePageRegion {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;

  // Reserves `size` bytes (rounded up to whole huge pages), zero-filled on first touch.
  static StatusOr<std::unique_ptr<HugePageRegion>> Allocate(size_t size);
  ~HugePageRegion();
  HugePageRegion(const HugePageRegion&) = delete;
  HugePageRegion& operator=(const HugePageRegion&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Whether the kernel accepted the huge-page advice (it may still fall back to small
  // pages when it cannot find free 2 MiB ranges).
  bool advised() const { return advised_; }
  // Bytes of this region currently backed by huge pages (from /proc/self/smaps), or -1
  // where that cannot be read.
  int64_t HugeBytes() const;

 private:
  HugePageRegion(uint8_t* mapping, size_t mapping_size, uint8_t* data, size_t size, bool advised)
      : mapping_(mapping), mapping_size_(mapping_size), data_(data), size_(size), advised_(advised) {}
  uint8_t* mapping_;
  size_t mapping_size_;
  uint8_t* data_;  // mapping_ rounded up to a huge-page boundary
  size_t size_;
  bool advised_;
};

}  // namespace kvserve
