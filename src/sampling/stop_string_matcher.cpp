#include "sampling/stop_string_matcher.h"

#include <algorithm>

#include "util/status.h"

namespace kvserve {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) KV_CHECK_MSG(!s.empty(), "empty stop string");
}

StopStringMatcher::Result StopStringMatcher::Feed(std::string_view delta) {
  KV_CHECK(!stopped_);
  Result result;
  buffer_.append(delta);
  if (stops_.empty()) {
    result.text.swap(buffer_);
    return result;
  }
  // buffer_ held no complete stop before this call, so any match ends in `delta`.
  size_t best_end = std::string::npos, best_pos = 0, best_index = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = buffer_.find(stops_[i]);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stops_[i].size();
    if (end < best_end || (end == best_end && pos < best_pos)) {
      best_end = end;
      best_pos = pos;
      best_index = i;
    }
  }
  if (best_end != std::string::npos) {
    result.text = buffer_.substr(0, best_pos);
    result.stop_index = best_index;
    buffer_.clear();
    stopped_ = true;
    return result;
  }
  const size_t hold = HoldbackLength();
  result.text = buffer_.substr(0, buffer_.size() - hold);
  buffer_.erase(0, buffer_.size() - hold);
  return result;
}

std::string StopStringMatcher::Flush() {
  KV_CHECK(!stopped_);
  std::string out;
  out.swap(buffer_);
  return out;
}

size_t StopStringMatcher::HoldbackLength() const {
  const std::string_view buf(buffer_);
  size_t best = 0;
  for (const auto& s : stops_) {
    // Longer candidates first; the first hit is this stop's longest.
    for (size_t len = std::min(s.size() - 1, buf.size()); len > best; --len) {
      if (buf.substr(buf.size() - len) == std::string_view(s).substr(0, len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

}  // namespace kvserve
