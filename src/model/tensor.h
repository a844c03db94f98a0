// A non-owning view of a weight tensor in its file precision.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace kvserve {

// Shape is outermost-first, as in PyTorch: a linear weight is {out_features, in_features}
// and each of its rows (in_features elements) is contiguous, in `dtype` blocks.
// (GGUF lists ne[] innermost-first; the reader reverses it.)
struct Tensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // nullptr when the tensor is absent (optional weights)
  size_t nbytes = 0;

  bool present() const { return data != nullptr; }
  int64_t rows() const { return shape.size() >= 2 ? shape[0] : 1; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

}  // namespace kvserve
