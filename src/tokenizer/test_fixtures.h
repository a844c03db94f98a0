// Test-only helpers: loading fixture tokenizers from ../shared and reading llama.cpp's
// tokenizer vectors. Missing fixtures fail the calling test (never skip).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "model/gguf_reader.h"
#include "model/vocab_loader.h"
#include "tokenizer/tokenizer.h"
#include "util/paths.h"

namespace kvserve::testing {

inline std::string ReadFixture(const std::string& relative) {
  const std::string path = SharedPath(relative);
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Unwraps a StatusOr<unique_ptr<Tokenizer>> with a readable failure.
inline std::unique_ptr<Tokenizer> MakeTokenizer(StatusOr<VocabSpec> spec) {
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  if (!spec.ok()) return nullptr;
  auto tok = Tokenizer::Create(*spec);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  if (!tok.ok()) return nullptr;
  return std::move(tok).value();
}

inline std::unique_ptr<Tokenizer> LoadSp(const std::string& rel) {
  return MakeTokenizer(LoadVocabFromSentencePieceModel(SharedPath(rel)));
}
inline std::unique_ptr<Tokenizer> LoadJson(const std::string& rel) {
  return MakeTokenizer(LoadVocabFromTokenizerJson(SharedPath(rel)));
}
inline std::unique_ptr<Tokenizer> LoadHfDir(const std::string& rel) {
  return MakeTokenizer(LoadVocabFromHfDir(SharedPath(rel)));
}

inline StatusOr<VocabSpec> LoadGgufSpec(const std::string& rel) {
  auto gguf = GgufFile::Open(SharedPath(rel));
  if (!gguf.ok()) return gguf.status();
  return LoadVocabFromGguf(**gguf);
}
inline std::unique_ptr<Tokenizer> LoadGguf(const std::string& rel) { return MakeTokenizer(LoadGgufSpec(rel)); }

struct VectorCase {
  std::string text;
  std::vector<int32_t> ids;
};

// Reads NAME.gguf.inp/.out (format in shared/tokenizers/vectors/README.md): inputs are
// separated by "\n__ggml_vocab_test__\n"; .out has one line of ids per input.
inline std::vector<VectorCase> ReadVectors(const std::string& family) {
  const std::string inp = ReadFixture("tokenizers/vectors/ggml-vocab-" + family + ".gguf.inp");
  const std::string out = ReadFixture("tokenizers/vectors/ggml-vocab-" + family + ".gguf.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VectorCase> cases;
  size_t pos = 0;
  while (pos < inp.size()) {
    const size_t hit = inp.find(sep, pos);
    if (hit == std::string::npos) {
      ADD_FAILURE() << family << ".inp does not end with the separator";
      break;
    }
    cases.push_back({inp.substr(pos, hit - pos), {}});
    pos = hit + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    if (i >= cases.size()) {
      ADD_FAILURE() << family << ".out has more lines than .inp has cases";
      break;
    }
    std::istringstream ids(line);
    int64_t id;
    while (ids >> id) cases[i].ids.push_back(static_cast<int32_t>(id));
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << family << ": .out lines vs .inp cases";
  EXPECT_EQ(cases.size(), 46u) << family << ": the vector set has 46 strings";
  return cases;
}

}  // namespace kvserve::testing
