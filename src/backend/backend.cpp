#include "backend/backend.h"

namespace kvserve {

namespace {
constexpr KvCacheDType kAllKvDTypes[] = {KvCacheDType::kF32, KvCacheDType::kF16, KvCacheDType::kBF16,
                                         KvCacheDType::kFP8, KvCacheDType::kInt8, KvCacheDType::kInt4};
}  // namespace

const char* KvCacheDTypeName(KvCacheDType t) {
  switch (t) {
    case KvCacheDType::kF32: return "f32";
    case KvCacheDType::kF16: return "f16";
    case KvCacheDType::kBF16: return "bf16";
    case KvCacheDType::kFP8: return "fp8";
    case KvCacheDType::kInt8: return "int8";
    case KvCacheDType::kInt4: return "int4";
  }
  return "?";
}

StatusOr<KvCacheDType> ParseKvCacheDType(const std::string& s, const char* option) {
  for (KvCacheDType t : kAllKvDTypes)
    if (s == KvCacheDTypeName(t)) return t;
  return Status::InvalidArgument(std::string(option) + " '" + s + "' (expected f32, f16, bf16, fp8, int8 or int4)");
}

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
