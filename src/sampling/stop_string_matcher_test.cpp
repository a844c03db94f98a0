#include "sampling/stop_string_matcher.h"

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "util/paths.h"

namespace kvserve {
namespace {

struct Outcome {
  std::string text;  // everything emitted, including a final Flush when no stop
  std::optional<size_t> stop_index;
  bool operator==(const Outcome&) const = default;
};

Outcome FeedAll(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopStringMatcher m(stops);
  Outcome out;
  for (const auto& p : pieces) {
    auto r = m.Feed(p);
    out.text += r.text;
    if (r.stop_index) {
      out.stop_index = r.stop_index;
      EXPECT_TRUE(m.stopped());
      return out;
    }
  }
  out.text += m.Flush();
  return out;
}

TEST(StopStringMatcherTest, StopSpanningTokenBoundaries) {
  StopStringMatcher m({"lo w"});
  auto r1 = m.Feed("Hel");
  EXPECT_EQ(r1.text, "He");  // "l" could start "lo w": held back
  EXPECT_FALSE(r1.stop_index);
  EXPECT_EQ(m.held(), 1u);
  auto r2 = m.Feed("lo wor");
  EXPECT_EQ(r2.text, "l");
  ASSERT_TRUE(r2.stop_index);
  EXPECT_EQ(*r2.stop_index, 0u);
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(FeedAll({"lo w"}, {"Hel", "lo wor", "ld"}), (Outcome{"Hel", 0}));
}

TEST(StopStringMatcherTest, StopAtTheVeryStart) {
  EXPECT_EQ(FeedAll({"Hello"}, {"Hello world"}), (Outcome{"", 0}));
  StopStringMatcher m({"Hello"});
  EXPECT_EQ(m.Feed("He").text, "");
  auto r = m.Feed("llo");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0u);
}

TEST(StopStringMatcherTest, HeldTextIsReleasedWhenItStopsMatching) {
  StopStringMatcher m({"world"});
  EXPECT_EQ(m.Feed("a wor").text, "a ");
  EXPECT_EQ(m.Feed("m").text, "worm");
  EXPECT_EQ(m.Feed("s w").text, "s ");
  EXPECT_EQ(m.Flush(), "w");  // generation ended another way: release the tail
}

TEST(StopStringMatcherTest, OverlappingCandidates) {
  // The held "abc" cannot become "abcd", but its suffix "bc" + "e" completes "bce".
  EXPECT_EQ(FeedAll({"abcd", "bce"}, {"a", "b", "c", "e", "zz"}), (Outcome{"a", 1}));
  // Self-overlap: "aaab" with stop "aab" must not lose the second match start.
  EXPECT_EQ(FeedAll({"aab"}, {"a", "a", "a", "b"}), (Outcome{"a", 0}));
  // First to complete wins; on a tie, the longest (earliest start).
  EXPECT_EQ(FeedAll({"world", "lo"}, {"hello world"}), (Outcome{"hel", 1}));
  EXPECT_EQ(FeedAll({"b", "ab"}, {"xab"}), (Outcome{"x", 1}));
  EXPECT_EQ(FeedAll({"abcd", "bc"}, {"abcd"}), (Outcome{"a", 1}));
  // Stop strings never appear in the output, even with several of them.
  EXPECT_EQ(FeedAll({"\n\n", "END", "User:"}, {"Sure", ".\n", "\nUser", ":"}), (Outcome{"Sure.", 0}));
}

TEST(StopStringMatcherTest, NoStopsAndMultiByteText) {
  EXPECT_EQ(FeedAll({}, {"a", "bc"}), (Outcome{"abc", std::nullopt}));
  StopStringMatcher m({"é!"});
  EXPECT_EQ(m.Feed("caf").text, "caf");
  EXPECT_EQ(m.Feed("é").text, "");  // whole character held, never half of it
  auto r = m.Feed("! ok");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0u);
}

// Reference on the whole text: the stop completing first, longest on ties.
Outcome Reference(const std::vector<std::string>& stops, const std::string& text) {
  size_t best_end = std::string::npos, best_pos = 0, best = 0;
  for (size_t i = 0; i < stops.size(); ++i) {
    const size_t pos = text.find(stops[i]);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stops[i].size();
    if (end < best_end || (end == best_end && pos < best_pos)) best_end = end, best_pos = pos, best = i;
  }
  if (best_end == std::string::npos) return {text, std::nullopt};
  return {text.substr(0, best_pos), best};
}

TEST(StopStringMatcherTest, OutputIndependentOfChunking) {
  std::mt19937 gen(17);
  auto random_string = [&](size_t min_len, size_t max_len) {
    std::string s(std::uniform_int_distribution<size_t>(min_len, max_len)(gen), 'a');
    for (char& c : s) c = "abc"[gen() % 3];
    return s;
  };
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::string> stops;
    const int num_stops = 1 + gen() % 3;
    for (int i = 0; i < num_stops; ++i) stops.push_back(random_string(1, 4));
    const std::string text = random_string(0, 30);
    const Outcome expected = Reference(stops, text);
    for (int cut = 0; cut < 4; ++cut) {
      std::vector<std::string> pieces;
      for (size_t i = 0; i < text.size();) {
        const size_t len = std::min<size_t>(text.size() - i, cut == 0 ? 1 : 1 + gen() % 5);
        pieces.push_back(text.substr(i, len));
        i += len;
      }
      if (cut == 3) pieces.insert(pieces.begin() + pieces.size() / 2, "");  // empty deltas happen
      ASSERT_EQ(FeedAll(stops, pieces), expected) << "text=" << text << " stop0=" << stops[0];
    }
  }
}

// Real decoded token pieces of a stories260K greedy continuation (llama.cpp golden).
TEST(StopStringMatcherTest, GoldenTokenPieces) {
  const std::string path = SharedPath("golden/stories260K/hello.json");
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing fixture " << path;
  const nlohmann::json golden = nlohmann::json::parse(in);
  std::vector<std::string> pieces;
  std::string full;
  for (const auto& step : golden.at("steps")) {
    pieces.push_back(step.at("token").get<std::string>());
    full += pieces.back();
  }
  ASSERT_EQ(full, golden.at("generated_text").get<std::string>());
  for (const std::string stop : {"see what", "ball.", " He w", "\nT", "inside. He wanted"}) {
    const size_t pos = full.find(stop);
    ASSERT_NE(pos, std::string::npos) << stop;
    EXPECT_EQ(FeedAll({stop, "never appears"}, pieces), (Outcome{full.substr(0, pos), 0})) << stop;
  }
  EXPECT_EQ(FeedAll({"never appears"}, pieces), (Outcome{full, std::nullopt}));
}

}  // namespace
}  // namespace kvserve
