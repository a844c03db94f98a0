#include "sampling/stop_string_matcher.h"

#include <algorithm>

#include "util/status.h"

namespace kvserve {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  stops_.reserve(stops.size());
  for (auto& s : stops) {
    KV_CHECK_MSG(!s.empty(), "empty stop string");
    Automaton a;
    a.failure.assign(s.size(), 0);
    for (size_t i = 1, k = 0; i < s.size(); ++i) {
      while (k > 0 && s[i] != s[k]) k = a.failure[k - 1];
      if (s[i] == s[k]) ++k;
      a.failure[i] = k;
    }
    a.stop = std::move(s);
    stops_.push_back(std::move(a));
  }
}

StopStringMatcher::Result StopStringMatcher::Feed(std::string_view delta) {
  KV_CHECK(!stopped_);
  Result result;
  const size_t old_size = buffer_.size();
  buffer_.append(delta);
  for (size_t pos = old_size; pos < buffer_.size(); ++pos) {
    const char c = buffer_[pos];
    // Of the stops completing at this byte, the longest (earliest start) wins.
    std::optional<size_t> done;
    for (size_t i = 0; i < stops_.size(); ++i) {
      Automaton& a = stops_[i];
      while (a.state > 0 && a.stop[a.state] != c) a.state = a.failure[a.state - 1];
      if (a.stop[a.state] == c) ++a.state;
      if (a.state == a.stop.size() && (!done || a.stop.size() > stops_[*done].stop.size())) done = i;
    }
    if (done) {
      // The stop started inside buffer_: everything before the held text was
      // already emitted, and the held text covers every live partial match.
      result.text = buffer_.substr(0, pos + 1 - stops_[*done].stop.size());
      result.stop_index = *done;
      buffer_.clear();
      stopped_ = true;
      return result;
    }
  }
  size_t hold = 0;
  for (const auto& a : stops_) hold = std::max(hold, a.state);
  result.text = buffer_.substr(0, buffer_.size() - hold);
  buffer_.erase(0, buffer_.size() - hold);
  return result;
}

std::string StopStringMatcher::Flush() {
  KV_CHECK(!stopped_);
  std::string out;
  out.swap(buffer_);
  for (auto& a : stops_) a.state = 0;
  return out;
}

}  // namespace kvserve
