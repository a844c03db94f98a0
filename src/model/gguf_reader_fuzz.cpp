// libFuzzer: the GGUF parser must return a Status, never crash, on any bytes;
// whatever it accepts must have every tensor inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "model/gguf_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = kvserve::GgufFile::FromBuffer(data, size, "fuzz.gguf");
  if (!g.ok()) return 0;
  for (const kvserve::Tensor& t : (*g)->tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    if (p < data || p + t.nbytes > data + size) std::abort();
    volatile uint8_t sink = t.nbytes ? p[t.nbytes - 1] : 0;
    (void)sink;
  }
  (void)(*g)->GetStringArray("tokenizer.ggml.tokens");
  (void)(*g)->GetFloatArray("tokenizer.ggml.scores");
  return 0;
}
