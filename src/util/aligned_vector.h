// std::vector whose storage starts on a cache line (64 bytes).
//
// The CPU kernels load activations in whole 64-byte vectors; from a buffer that starts
// off a line every such load straddles two lines. Two backends in one process, whose
// buffers malloc had placed 0 and 16 bytes past a line, ran decode steps 3-5% apart
// (decode_bench --compare-row-prefetch 3/9,3/9: the same kernels on both sides).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace kvserve {

inline constexpr size_t kCacheLineBytes = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kCacheLineBytes})); }
  // The unsized form: clang before 19 does not declare sized deallocation by default.
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{kCacheLineBytes}); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace kvserve
