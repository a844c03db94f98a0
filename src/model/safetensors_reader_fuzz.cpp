// libFuzzer target: arbitrary bytes as a .safetensors file (and, when it looks like JSON,
// as a config.json). Parsers must return a Status, never crash or read out of bounds;
// accepted tensors must lie inside the buffer with sizes matching their shapes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/hf_config.h"
#include "model/quant.h"
#include "model/safetensors_reader.h"
#include "util/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == '{') {
    auto c = kvserve::ParseHfConfig(std::string(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    if (c.ok()) KV_CHECK(c->head_dim > 0 && c->num_heads % c->num_kv_heads == 0);
  }
  auto f = kvserve::SafetensorsFile::FromBuffer(data, size, "fuzz.safetensors");
  if (!f.ok()) {
    KV_CHECK(!f.status().message().empty());
    return 0;
  }
  std::vector<float> row;
  for (const kvserve::Tensor& t : (*f)->tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    KV_CHECK(p >= data && t.nbytes <= size && p - data <= static_cast<ptrdiff_t>(size - t.nbytes));
    KV_CHECK(static_cast<size_t>(t.numel()) * kvserve::GetDTypeInfo(t.dtype).block_bytes == t.nbytes);
    if (t.numel() == 0 || t.numel() > (1 << 20)) continue;
    // Byte-wise copy first: safetensors data carries no alignment guarantee.
    std::vector<uint8_t> aligned(p, p + t.nbytes);
    row.resize(t.numel());
    kvserve::DequantizeRow(t.dtype, aligned.data(), row.data(), t.numel());
  }
  return 0;
}
