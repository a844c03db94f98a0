// libFuzzer target: arbitrary bytes as text for the real tokenizers (SentencePiece with
// byte fallback, byte-level BPE with the Llama 3 and SmolLM2 pre-tokenizers). Checks the
// invariants every input must keep: ids in range, and Decode(Encode(x)) == x.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab_loader.h"
#include "tokenizer/byte_level_map.h"
#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/paths.h"

namespace {

std::vector<std::unique_ptr<kvserve::Tokenizer>> LoadAll() {
  std::vector<std::unique_ptr<kvserve::Tokenizer>> v;
  const auto add = [&](kvserve::StatusOr<kvserve::VocabSpec> spec) {
    if (!spec.ok()) {
      std::fprintf(stderr, "fixture: %s\n", spec.status().ToString().c_str());
      std::abort();
    }
    auto tok = kvserve::Tokenizer::Create(*spec);
    if (!tok.ok()) std::abort();
    v.push_back(std::move(tok).value());
  };
  add(kvserve::LoadVocabFromSentencePieceModel(kvserve::SharedPath("models/stories260K/tok512.model")));
  add(kvserve::LoadVocabFromTokenizerJson(kvserve::SharedPath("tokenizers/llama3/tokenizer.json")));
  add(kvserve::LoadVocabFromHfDir(kvserve::SharedPath("tokenizers/smollm2-135m")));
  return v;
}

// The text a lossless round trip gives back: byte-level vocabularies that lack some byte
// pieces (SmolLM2 has no piece for 0x04, 0xC0, 0xF5..0xFF, ...) drop those bytes, as the
// reference tokenizers do.
// SentencePiece writes a space as U+2581 ("\xE2\x96\x81") before it encodes, and
// decodes U+2581 as a space, so a U+2581 already in the text comes back as a space; the
// reference implementations (sentencepiece, llama.cpp's SPM vocab) do the same.
std::string Encodable(const kvserve::Tokenizer& tok, const std::string& text) {
  if (tok.kind() != kvserve::VocabSpec::Kind::kByteLevelBpe) {
    static constexpr std::string_view kMetaSpace = "\xE2\x96\x81";
    std::string out = text;
    for (size_t at = out.find(kMetaSpace); at != std::string::npos; at = out.find(kMetaSpace, at + 1)) out.replace(at, kMetaSpace.size(), " ");
    return out;
  }
  static const kvserve::ByteLevelMap map;
  std::string out, piece;
  for (char c : text) {
    piece.clear();
    map.Encode(std::string_view(&c, 1), piece);
    if (tok.TokenToId(piece) >= 0) out.push_back(c);
  }
  return out;
}

[[noreturn]] void Fail(size_t which, const char* what, const std::string& got, const std::string& want) {
  std::fprintf(stderr, "tokenizer #%zu: %s\n got: %s\nwant: %s\n", which, what, got.c_str(), want.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* tokenizers = new std::vector<std::unique_ptr<kvserve::Tokenizer>>(LoadAll());
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (size_t t = 0; t < tokenizers->size(); ++t) {
    const auto& tok = (*tokenizers)[t];
    const std::string want = Encodable(*tok, text);
    const auto ids = tok->Encode(text, /*add_special=*/false, /*parse_special=*/false);
    for (int32_t id : ids) {
      if (id < 0 || id >= tok->vocab_size()) Fail(t, "id out of range", std::to_string(id), "");
    }
    if (tok->Decode(ids, false) != want) Fail(t, "Decode(Encode(x))", tok->Decode(ids, false), want);
    // Special-token parsing changes ids but never the text (byte-level BPE; SentencePiece
    // adds llama.cpp's dummy-prefix space after each special token).
    const auto special = tok->Encode(text, /*add_special=*/false, /*parse_special=*/true);
    for (int32_t id : special) {
      if (id < 0 || id >= tok->vocab_size()) Fail(t, "id out of range (parse_special)", std::to_string(id), "");
    }
    if (tok->kind() == kvserve::VocabSpec::Kind::kByteLevelBpe && tok->Decode(special, false) != want) {
      Fail(t, "Decode(Encode(x, parse_special))", tok->Decode(special, false), want);
    }
    kvserve::IncrementalDetokenizer d(tok.get(), {.skip_special = true, .sequence_start = true});
    std::string streamed;
    for (int32_t id : ids) streamed += d.Push(id);
    streamed += d.Finish();
    if (streamed != kvserve::SanitizeUtf8(tok->Decode(ids, true))) {
      Fail(t, "streamed", streamed, kvserve::SanitizeUtf8(tok->Decode(ids, true)));
    }
  }
  return 0;
}
