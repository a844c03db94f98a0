// Small helpers the benchmarks share.
#pragma once

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace kvserve {

// The non-empty pieces of `s` between separators: "a,,b" -> {"a", "b"}.
inline std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The upper median. REQUIRES: !v.empty().
inline double Median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace kvserve
