// libFuzzer: the safetensors parser must return a Status, never crash, on any bytes;
// whatever it accepts must have every tensor inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "model/safetensors_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = kvserve::SafetensorsFile::FromBuffer(data, size, "fuzz.safetensors");
  if (!f.ok()) return 0;
  for (const kvserve::Tensor& t : (*f)->tensors()) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    if (p < data || p + t.nbytes > data + size) std::abort();
  }
  return 0;
}
