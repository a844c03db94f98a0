#include "backend/backend.h"

namespace kvserve {

size_t KvBlockBytes(const ModelConfig& cfg, int block_size, KvCacheDType dtype) {
  size_t elems = static_cast<size_t>(cfg.num_layers) * 2 * block_size * cfg.num_kv_heads * cfg.head_dim;
  switch (dtype) {
    case KvCacheDType::kF32: return elems * 4;
    case KvCacheDType::kF16:
    case KvCacheDType::kBF16: return elems * 2;
    case KvCacheDType::kFP8:
    case KvCacheDType::kInt8: return elems;  // + per-token scales, accounted by the quantization issue
    case KvCacheDType::kInt4: return elems / 2;
  }
  return elems * 4;
}

}  // namespace kvserve
