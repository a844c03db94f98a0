#include "model/weight_memory.h"

#include <fmt/format.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <map>
#include <set>
#include <vector>

#include "model/quant.h"

namespace kvserve {

int64_t AvailableMemoryBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    long long kb = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %lld kB", &kb) == 1) return static_cast<int64_t>(kb) << 10;
  }
  return -1;
}

Status CopyWeightsToHugePages(Model& m) {
  const int64_t available = AvailableMemoryBytes();
  return CopyWeightsToHugePages(m, available < 0 ? std::numeric_limits<int64_t>::max() : available);
}

Status CopyWeightsToHugePages(Model& m, int64_t memory_available) {
  if (m.weight_region != nullptr) return Status::Ok();
  std::vector<Tensor*> all = m.weights.All();
  // Lay the copies out in slot order (the order a forward pass reads them), each at a
  // 64-byte boundary; tied tensors share one copy.
  struct Copy {
    size_t offset, nbytes;
  };
  std::map<const void*, Copy> copy_of;
  size_t size = 0;
  for (Tensor* t : all) {
    if (!t->present() || copy_of.count(t->data)) continue;
    copy_of.emplace(t->data, Copy{size, t->nbytes});
    size += (t->nbytes + 63) / 64 * 64;
  }
  if (size == 0) return Status::Ok();
  if (static_cast<int64_t>(size) > memory_available)
    return Status::ResourceExhausted(fmt::format("{}: copying the weights into huge pages needs {} MiB, only {} MiB of memory is available",
                                                 m.path, size >> 20, memory_available >> 20));
  KV_ASSIGN_OR_RETURN(std::unique_ptr<HugePageRegion> region, HugePageRegion::Allocate(size));
  for (const auto& [src, c] : copy_of) std::memcpy(region->data() + c.offset, src, c.nbytes);
  for (Tensor* t : all)
    if (t->present()) t->data = region->data() + copy_of.at(t->data).offset;
  m.weight_region = std::move(region);
  // Drop the originals. The file pages under each tensor leave this process's page
  // tables, so its resident size counts the weights once (they stay in the page cache,
  // and a later read would fault them back in). Heap copies (converted or realigned
  // tensors) are referenced only by tensors.
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto on_heap = [&](const void* p) {
    for (const std::vector<uint8_t>& b : m.owned_buffers)
      if (p >= static_cast<const void*>(b.data()) && p < static_cast<const void*>(b.data() + b.size())) return true;
    return false;
  };
  for (const auto& [src, c] : copy_of) {
    if (on_heap(src)) continue;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(src) + page - 1) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(src) + c.nbytes) & ~(page - 1);
    if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
  m.owned_buffers.clear();
  return Status::Ok();
}

void SplitQ8_0Rows(Model& m) {
  KV_CHECK_MSG(m.weight_region != nullptr, "SplitQ8_0Rows needs the weights copied out of the file mapping");
  std::vector<Tensor*> all = m.weights.All();
  std::set<const void*> converted;  // tied tensors share their data: convert it once
  std::vector<uint8_t> row;
  for (Tensor* t : all) {
    if (!t->present() || t->dtype != DType::kQ8_0) continue;
    if (converted.insert(t->data).second) {
      const int64_t n = t->cols();
      const size_t row_bytes = RowBytes(DType::kQ8_0, n);
      row.resize(row_bytes);
      auto* base = static_cast<uint8_t*>(const_cast<void*>(t->data));
      for (size_t off = 0; off + row_bytes <= t->nbytes; off += row_bytes) {
        std::memcpy(row.data(), base + off, row_bytes);
        SplitQ8_0Row(row.data(), base + off, n);
      }
    }
    t->dtype = DType::kQ8_0Rows;
  }
}

StatusOr<WeightMemory> ParseWeightMemory(const std::string& s) {
  if (s == "mapped") return WeightMemory::kMapped;
  if (s == "huge-pages") return WeightMemory::kHugePages;
  return Status::InvalidArgument(fmt::format("weight memory '{}': expected mapped or huge-pages", s));
}

}  // namespace kvserve
