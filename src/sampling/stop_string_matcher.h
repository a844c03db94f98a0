// Streaming stop-string detection over decoded text.
//
// Feed() takes each new piece of decoded text and returns what may be shown to
// the client now. Any tail that could still grow into a stop string is held
// back until it either completes one (then it is dropped, with everything
// after it) or stops matching (then it is released). A stop string is never
// emitted, even when it spans several tokens.
//
// Which stop wins: the first to complete in the text stream (smallest end
// offset), ties going to the longest (earliest start). This choice makes the
// output independent of how the text was cut into pieces.
//
// Works on bytes; with valid UTF-8 pieces and stop strings, held-back and
// emitted text always split at character boundaries. Each stop string runs a
// KMP automaton, so a byte costs O(number of stops) amortized whatever the
// stop strings' lengths. Not thread-safe; one matcher per sequence.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvserve {

class StopStringMatcher {
 public:
  struct Result {
    std::string text;  // safe to emit now
    // Set when a stop string completed: its index in the constructor's list.
    // `text` is then everything up to (not including) the stop string.
    std::optional<size_t> stop_index;
  };

  // REQUIRES: no empty stop strings (SamplingParams::Validate rejects them).
  explicit StopStringMatcher(std::vector<std::string> stops);

  // REQUIRES: !stopped().
  Result Feed(std::string_view delta);

  // The held-back tail, for when generation ends for another reason (EOS,
  // max_tokens). REQUIRES: !stopped(). Leaves the matcher empty.
  std::string Flush();

  bool stopped() const { return stopped_; }
  // Bytes currently held back.
  size_t held() const { return buffer_.size(); }

 private:
  struct Automaton {
    std::string stop;
    std::vector<size_t> failure;  // KMP: longest proper border of stop[0, i]
    size_t state = 0;             // longest prefix of stop that is a suffix of the text so far
  };

  std::vector<Automaton> stops_;
  std::string buffer_;  // held back: the longest automaton state's worth of text
  bool stopped_ = false;
};

}  // namespace kvserve
