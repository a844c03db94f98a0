// libFuzzer target: arbitrary bytes as a SentencePiece tokenizer.model. The loader must
// return a Status (never crash or read out of bounds); whatever it accepts must build a
// Tokenizer or be rejected by Create, and encode/decode without crashing.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "model/vocab_loader.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The loader takes a path; an anonymous in-memory file avoids touching the disk.
  const int fd = memfd_create("sp_model_fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto spec = kvserve::LoadVocabFromSentencePieceModel(path);
  close(fd);
  if (!spec.ok()) return 0;
  auto tok = kvserve::Tokenizer::Create(*spec);
  if (!tok.ok()) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size < 256 ? size : 256);
  const auto ids = (*tok)->Encode(text, true, true);
  (void)(*tok)->Decode(ids, false);
  (void)(*tok)->Encode("Once upon a time <s> \xF0\x9F\x90\xB6", true, true);
  return 0;
}
