#include "tokenizer/incremental_detokenizer.h"

#include <gtest/gtest.h>

#include "tokenizer/test_fixtures.h"
#include "tokenizer/utf8.h"

namespace kvserve {
namespace {

using testing::LoadJson;
using testing::LoadSp;

bool IsValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = ValidUtf8Len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string Stream(const Tokenizer& tok, const std::vector<int32_t>& ids, IncrementalDetokenizer::Options opt,
                   int* held_back_steps) {
  IncrementalDetokenizer d(&tok, opt);
  std::string all;
  *held_back_steps = 0;
  for (int32_t id : ids) {
    const std::string piece = d.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece)) << "token " << id;
    *held_back_steps += d.pending_bytes() > 0;
    all += piece;
  }
  all += d.Finish();
  return all;
}

const char* kTexts[] = {
    "The café had a naïve dog 🐶 named Zöe.",
    "我能吞下玻璃而不伤身体。👩‍👩‍👧‍👦 🇺🇸",
    " leading space, then\nnewline",
    "plain ascii",
};

TEST(IncrementalDetokenizer, MatchesDecodeForByteFallbackSentencePiece) {
  auto tok = LoadSp("models/stories260K/tok512.model");
  ASSERT_NE(tok, nullptr);
  int total_held = 0;
  for (const char* text : kTexts) {
    const auto ids = tok->Encode(text, true, false);
    int held = 0;
    EXPECT_EQ(Stream(*tok, ids, {}, &held), text);
    EXPECT_EQ(Stream(*tok, ids, {}, &held), SanitizeUtf8(tok->Decode(ids, true)));
    total_held += held;
  }
  // The 512-piece vocabulary spells é, ï, ö, 🐶 and CJK with byte tokens, so some steps
  // must have held bytes back.
  EXPECT_GT(total_held, 0);
}

TEST(IncrementalDetokenizer, MatchesDecodeForByteLevelBpe) {
  auto tok = LoadJson("tokenizers/llama3/tokenizer.json");
  ASSERT_NE(tok, nullptr);
  for (const char* text : kTexts) {
    const auto ids = tok->Encode(text, true, false);
    int held = 0;
    EXPECT_EQ(Stream(*tok, ids, {}, &held), text);
  }
}

TEST(IncrementalDetokenizer, ContinuationKeepsLeadingSpace) {
  auto tok = LoadSp("models/stories260K/tok512.model");
  ASSERT_NE(tok, nullptr);
  // Generated after a prompt: " Once" must keep its space (as llama.cpp's server shows it).
  const std::vector<int32_t> gen = {403, 407};  // "▁Once" "▁upon"
  int held = 0;
  EXPECT_EQ(Stream(*tok, gen, {.skip_special = true, .sequence_start = false}, &held), " Once upon");
  EXPECT_EQ(Stream(*tok, gen, {.skip_special = true, .sequence_start = true}, &held), "Once upon");
  // A BOS first does not end the start-of-text state, as in Decode.
  EXPECT_EQ(Stream(*tok, {1, 403, 407}, {}, &held), "Once upon");
  EXPECT_EQ(Stream(*tok, {1, 403, 407}, {.skip_special = false, .sequence_start = true}, &held), "<s>Once upon");
}

TEST(IncrementalDetokenizer, BrokenBytesBecomeReplacementCharacters) {
  auto tok = LoadSp("models/stories260K/tok512.model");
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer d(tok.get(), {.skip_special = true, .sequence_start = false});
  // <0xF0> <0x9F> <0x90>: an unfinished 4-byte character is held back...
  EXPECT_EQ(d.Push(3 + 0xF0), "");
  EXPECT_EQ(d.Push(3 + 0x9F), "");
  EXPECT_EQ(d.Push(3 + 0x90), "");
  EXPECT_EQ(d.pending_bytes(), 3u);
  // ...and flushed as one U+FFFD at the end.
  EXPECT_EQ(d.Finish(), "\xEF\xBF\xBD");
  // A byte that can never start a character comes out at once as U+FFFD.
  EXPECT_EQ(d.Push(3 + 0xFF), "\xEF\xBF\xBD");
  // An unfinished character interrupted by ASCII: U+FFFD, then the ASCII.
  EXPECT_EQ(d.Push(3 + 0xE2), "");
  EXPECT_EQ(d.Push(3 + 'A'), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(d.Finish(), "");
}

TEST(Utf8, SanitizeAndTail) {
  EXPECT_EQ(SanitizeUtf8("ok"), "ok");
  EXPECT_EQ(SanitizeUtf8("\xC3"), "\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xE2\x82" "a"), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(IncompleteUtf8Tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xF0\x9F\x90\xB6"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xE0\x80"), 0u);  // can never become valid
  EXPECT_EQ(IncompleteUtf8Tail("\xFF"), 0u);
}

}  // namespace
}  // namespace kvserve
