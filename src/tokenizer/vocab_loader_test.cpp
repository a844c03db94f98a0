// Loading vocabularies from SentencePiece protobufs, tokenizer.json and HF directories:
// real files load with the right ids; damaged or unsupported files give one clear error
// naming the file, never a crash.
#include "model/vocab_loader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "tokenizer/test_fixtures.h"

namespace kvserve {
namespace {

using testing::ReadFixture;

std::string TempPath(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "kvserve_vocab_loader_test";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// --- A tiny protobuf writer, to build SentencePiece models field by field. ---
void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void PutTag(std::string& out, uint32_t field, uint32_t wire) { PutVarint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void PutBytes(std::string& out, uint32_t field, const std::string& b) {
  PutTag(out, field, 2);
  PutVarint(out, b.size());
  out += b;
}
void PutInt(std::string& out, uint32_t field, int64_t v) {
  PutTag(out, field, 0);
  PutVarint(out, static_cast<uint64_t>(v));
}
std::string Piece(const std::string& text, float score, int type) {
  std::string p;
  PutBytes(p, 1, text);
  PutTag(p, 2, 5);
  char f[4];
  std::memcpy(f, &score, 4);
  p.append(f, 4);
  PutInt(p, 3, type);
  return p;
}

struct SpOptions {
  int model_type = 2;
  int bos_id = 1;
  int pad_id = -1;
  int bad_type = 0;  // nonzero: give piece "b" this type
  bool add_dummy_prefix = true;
};

std::string MakeSpModel(const SpOptions& o) {
  std::string m;
  PutBytes(m, 1, Piece("<unk>", 0, 2));
  PutBytes(m, 1, Piece("<s>", 0, 3));
  PutBytes(m, 1, Piece("</s>", 0, 3));
  PutBytes(m, 1, Piece("\xE2\x96\x81", -1, 1));
  PutBytes(m, 1, Piece("a", -2, 1));
  PutBytes(m, 1, Piece("b", -3, o.bad_type ? o.bad_type : 1));
  PutBytes(m, 1, Piece("ab", -4, 1));
  PutBytes(m, 1, Piece("\xE2\x96\x81" "ab", -5, 1));
  std::string trainer;
  PutBytes(trainer, 1, "corpus.txt");  // an unrelated field, skipped
  PutInt(trainer, 3, o.model_type);
  PutInt(trainer, 41, o.bos_id);
  PutInt(trainer, 43, o.pad_id);  // -1 is a ten-byte varint
  PutBytes(m, 2, trainer);
  std::string norm;
  PutBytes(norm, 1, "identity");
  PutInt(norm, 3, o.add_dummy_prefix ? 1 : 0);
  PutBytes(m, 3, norm);
  return m;
}

TEST(VocabLoader, SentencePieceRealModels) {
  auto llama2 = LoadVocabFromSentencePieceModel(SharedPath("tokenizers/llama2-sp/tokenizer.model"));
  ASSERT_TRUE(llama2.ok()) << llama2.status().ToString();
  EXPECT_EQ(llama2->kind, VocabSpec::Kind::kSentencePiece);
  EXPECT_EQ(llama2->tokens.size(), 32000u);
  EXPECT_EQ(llama2->tokens[29871], "\xE2\x96\x81");
  EXPECT_EQ(llama2->types[3], TokenType::kByte);
  EXPECT_EQ(llama2->types[1], TokenType::kControl);
  EXPECT_EQ(llama2->types[0], TokenType::kUnknown);
  EXPECT_EQ(llama2->unk_id, 0);
  EXPECT_EQ(llama2->bos_id, 1);
  EXPECT_EQ(llama2->eos_id, 2);
  EXPECT_EQ(llama2->pad_id, -1);
  EXPECT_TRUE(llama2->add_bos);
  EXPECT_TRUE(llama2->add_space_prefix);
  ASSERT_EQ(llama2->scores.size(), 32000u);
  EXPECT_FLOAT_EQ(llama2->scores[260], -1.0f);  // "▁t", the first merge
  EXPECT_FLOAT_EQ(llama2->scores[31999], -31740.0f);

  auto tok512 = LoadVocabFromSentencePieceModel(SharedPath("models/stories260K/tok512.model"));
  ASSERT_TRUE(tok512.ok()) << tok512.status().ToString();
  EXPECT_EQ(tok512->tokens.size(), 512u);
  EXPECT_EQ(tok512->tokens[410], "\xE2\x96\x81");
  EXPECT_TRUE(tok512->add_space_prefix);  // default when normalizer_spec omits the field
}

TEST(VocabLoader, SentencePieceSynthetic) {
  auto ok = LoadVocabFromSentencePieceModel(WriteTemp("ok.model", MakeSpModel({})));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->tokens.size(), 8u);
  EXPECT_EQ(ok->pad_id, -1);
  EXPECT_FLOAT_EQ(ok->scores[7], -5.0f);
  auto tok = Tokenizer::Create(*ok);
  ASSERT_TRUE(tok.ok());
  // "ab" -> "▁ab" (score -5) beats nothing else: the highest-scoring pairs merge first.
  EXPECT_EQ((*tok)->Encode("ab", true, false), (std::vector<int32_t>{1, 7}));

  auto no_prefix = LoadVocabFromSentencePieceModel(WriteTemp("np.model", MakeSpModel({.add_dummy_prefix = false})));
  ASSERT_TRUE(no_prefix.ok());
  EXPECT_FALSE(no_prefix->add_space_prefix);
}

void ExpectError(const StatusOr<VocabSpec>& r, Status::Code code, const std::string& path, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << path;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "one line";
}

TEST(VocabLoader, SentencePieceErrors) {
  std::string p = WriteTemp("unigram.model", MakeSpModel({.model_type = 1}));
  ExpectError(LoadVocabFromSentencePieceModel(p), Status::Code::kUnsupported, p, "UNIGRAM");
  p = WriteTemp("bos.model", MakeSpModel({.bos_id = 99}));
  ExpectError(LoadVocabFromSentencePieceModel(p), Status::Code::kCorrupt, p, "bos_id 99");
  p = WriteTemp("type.model", MakeSpModel({.bad_type = 9}));
  ExpectError(LoadVocabFromSentencePieceModel(p), Status::Code::kCorrupt, p, "unknown type 9");
  std::string wire;
  PutInt(wire, 1, 5);  // field 1 (pieces) as a varint
  p = WriteTemp("wire.model", wire);
  ExpectError(LoadVocabFromSentencePieceModel(p), Status::Code::kCorrupt, p, "wire type");
  std::string overlong;
  PutTag(overlong, 1, 2);
  PutVarint(overlong, 1000);
  overlong += "abc";
  p = WriteTemp("overlong.model", overlong);
  ExpectError(LoadVocabFromSentencePieceModel(p), Status::Code::kCorrupt, p, "runs past the end");
  p = WriteTemp("empty.model", "");
  ExpectError(LoadVocabFromSentencePieceModel(p), Status::Code::kCorrupt, p, "no pieces");
  p = TempPath("does-not-exist.model");
  auto missing = LoadVocabFromSentencePieceModel(p);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(p), std::string::npos);
}

TEST(VocabLoader, SentencePieceTruncationsAndBitFlipsNeverCrash) {
  const std::string real = ReadFixture("models/stories260K/tok512.model");
  ASSERT_GT(real.size(), 1000u);
  int errors = 0;
  for (size_t len = 0; len < real.size(); len += 7) {
    const std::string p = WriteTemp("trunc.model", real.substr(0, len));
    auto r = LoadVocabFromSentencePieceModel(p);
    if (!r.ok()) {
      ++errors;
      EXPECT_NE(r.status().message().find(p), std::string::npos) << r.status().ToString();
    }
  }
  EXPECT_GT(errors, 0);
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string m = real;
    m[rng() % m.size()] ^= static_cast<char>(1 + rng() % 255);
    auto r = LoadVocabFromSentencePieceModel(WriteTemp("flip.model", m));
    if (r.ok()) {
      // Whatever parses must also build a tokenizer or be rejected cleanly.
      auto tok = Tokenizer::Create(*r);
      if (tok.ok()) (void)(*tok)->Encode("Once upon a time 🐶", true, true);
    }
  }
}

TEST(VocabLoader, TokenizerJsonErrors) {
  std::string p = WriteTemp("bad.json", "{ not json");
  ExpectError(LoadVocabFromTokenizerJson(p), Status::Code::kCorrupt, p, "not valid JSON");
  p = WriteTemp("wp.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  ExpectError(LoadVocabFromTokenizerJson(p), Status::Code::kUnsupported, p, "WordPiece");
  p = WriteTemp("hole.json",
                R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}, "decoder": {"type": "ByteLevel"}})");
  ExpectError(LoadVocabFromTokenizerJson(p), Status::Code::kCorrupt, p, "token id 1 is missing");
  p = WriteTemp("merge.json",
                R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}, "decoder": {"type": "ByteLevel"}})");
  ExpectError(LoadVocabFromTokenizerJson(p), Status::Code::kCorrupt, p, "merges[0]");
  p = WriteTemp("pre.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "x+"},
      "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}})");
  ExpectError(LoadVocabFromTokenizerJson(p), Status::Code::kUnsupported, p, "pre_tokenizer");
  p = WriteTemp("notobj.json", "[1, 2]");
  ExpectError(LoadVocabFromTokenizerJson(p), Status::Code::kCorrupt, p, "not a JSON object");
}

TEST(VocabLoader, TokenizerJsonMergeForms) {
  // Qwen3 stores merges as ["a", "b"] pairs, Llama 3 as "a b" strings: both load.
  auto qwen = LoadVocabFromTokenizerJson(SharedPath("tokenizers/qwen3/tokenizer.json"));
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_EQ(qwen->merges.size(), 151387u);
  EXPECT_EQ(qwen->merges[0], "\xC4\xA0 \xC4\xA0");
  EXPECT_EQ(qwen->pre_tokenizer, "qwen2");
  EXPECT_EQ(qwen->tokens.size(), 151669u);
  EXPECT_FALSE(qwen->chat_template.empty());
  auto llama3 = LoadVocabFromTokenizerJson(SharedPath("tokenizers/llama3/tokenizer.json"));
  ASSERT_TRUE(llama3.ok()) << llama3.status().ToString();
  EXPECT_EQ(llama3->merges.size(), 280147u);
  EXPECT_EQ(llama3->pre_tokenizer, "llama3");
  EXPECT_TRUE(llama3->add_bos);
  EXPECT_NE(llama3->chat_template.find("<|start_header_id|>"), std::string::npos);
  auto smol = LoadVocabFromHfDir(SharedPath("tokenizers/smollm2-135m"));
  ASSERT_TRUE(smol.ok()) << smol.status().ToString();
  EXPECT_EQ(smol->pre_tokenizer, "smollm");
  EXPECT_FALSE(smol->add_bos);
}

TEST(VocabLoader, GgufVocabularies) {
  auto stories = testing::LoadGgufSpec("models/stories260K/stories260K.gguf");
  ASSERT_TRUE(stories.ok()) << stories.status().ToString();
  EXPECT_EQ(stories->kind, VocabSpec::Kind::kSentencePiece);
  EXPECT_EQ(stories->tokens.size(), 512u);
  EXPECT_EQ(stories->bos_id, 1);
  EXPECT_EQ(stories->eos_id, 2);
  EXPECT_EQ(stories->unk_id, 0);
  EXPECT_EQ(stories->pad_id, -1);  // stored as 0xFFFFFFFF
  EXPECT_TRUE(stories->add_bos);   // key absent: SentencePiece default
  EXPECT_TRUE(stories->add_space_prefix);
  EXPECT_EQ(stories->eog_ids, (std::vector<int>{2}));

  auto gpt2 = testing::LoadGgufSpec("tokenizers/vectors/ggml-vocab-gpt-2.gguf");
  ASSERT_TRUE(gpt2.ok()) << gpt2.status().ToString();
  EXPECT_EQ(gpt2->kind, VocabSpec::Kind::kByteLevelBpe);
  EXPECT_EQ(gpt2->pre_tokenizer, "gpt2");
  EXPECT_EQ(gpt2->merges.size(), 50000u);
  EXPECT_TRUE(gpt2->scores.empty());
  EXPECT_FALSE(gpt2->add_bos);
  EXPECT_FALSE(gpt2->add_space_prefix);
  EXPECT_EQ(gpt2->eos_id, 50256);

  auto phi3 = testing::LoadGgufSpec("tokenizers/vectors/ggml-vocab-phi-3.gguf");
  ASSERT_TRUE(phi3.ok()) << phi3.status().ToString();
  EXPECT_EQ(phi3->eos_id, 32000);
  EXPECT_FALSE(phi3->chat_template.empty());
}

TEST(VocabLoader, HfDirErrors) {
  const std::string dir = TempPath("empty_dir");
  std::filesystem::create_directories(dir);
  auto r = LoadVocabFromHfDir(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find(dir), std::string::npos);
}

}  // namespace
}  // namespace kvserve
