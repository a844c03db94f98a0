#include "model/dtype.h"

#include "util/status.h"

namespace kvserve {

const DTypeInfo& GetDTypeInfo(DType t) {
  static const DTypeInfo kInfo[] = {
      {"f32", 1, 4}, {"f16", 1, 2}, {"bf16", 1, 2}, {"q8_0", 32, 34}, {"q4_0", 32, 18}, {"q4_k", 256, 144}, {"q6_k", 256, 210}, {"q8_0_rows", 32, 34},
  };
  return kInfo[static_cast<int>(t)];
}

size_t RowBytes(DType t, int64_t n) {
  const DTypeInfo& info = GetDTypeInfo(t);
  KV_CHECK_MSG(n % info.block_elems == 0, "row length not a multiple of the quantization block");
  return static_cast<size_t>(n / info.block_elems) * info.block_bytes;
}

}  // namespace kvserve
