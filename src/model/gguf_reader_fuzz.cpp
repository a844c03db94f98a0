// libFuzzer target: arbitrary bytes as a GGUF file. The reader must return a Status (never
// crash, read out of bounds or allocate from a bogus count); whatever it accepts must have
// every tensor inside the buffer, readable typed metadata, and dequantizable rows.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/gguf_reader.h"
#include "model/quant.h"
#include "model/vocab_loader.h"
#include "util/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = kvserve::GgufFile::FromBuffer(data, size, "fuzz.gguf");
  if (!g.ok()) {
    KV_CHECK(!g.status().message().empty());
    return 0;
  }
  const kvserve::GgufFile& f = **g;
  for (const auto& [key, value] : f.metadata()) {
    (void)f.GetString(key);
    (void)f.GetInt(key);
    (void)f.GetFloat(key);
    (void)f.GetBool(key);
    (void)f.GetStringArray(key);
    (void)f.GetIntArray(key);
    (void)f.GetFloatArray(key);
  }
  std::vector<float> row;
  for (const kvserve::Tensor& t : f.tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    KV_CHECK(p >= data && t.nbytes <= size && p - data <= static_cast<ptrdiff_t>(size - t.nbytes));
    KV_CHECK(t.shape.size() >= 1 && t.shape.size() <= 4);
    const int64_t cols = t.shape.back();
    const size_t row_bytes = kvserve::RowBytes(t.dtype, cols);
    KV_CHECK(row_bytes <= t.nbytes);
    if (cols > (int64_t{1} << 20)) continue;
    row.resize(cols);
    // First and last rows, read as a backend would (the buffer keeps the file's alignment).
    kvserve::DequantizeRow(t.dtype, p, row.data(), cols);
    kvserve::DequantizeRow(t.dtype, p + t.nbytes - row_bytes, row.data(), cols);
  }
  // The tokenizer metadata path LoadModel takes for every GGUF.
  (void)kvserve::LoadVocabFromGguf(f);
  return 0;
}
