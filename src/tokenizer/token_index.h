// Piece text -> token id lookup that accepts string_view keys without allocating.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvserve {

struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

using TokenIndex = std::unordered_map<std::string, int32_t, TransparentStringHash, std::equal_to<>>;

// -1 when absent.
inline int32_t FindToken(const TokenIndex& index, std::string_view piece) {
  auto it = index.find(piece);
  return it == index.end() ? -1 : it->second;
}

}  // namespace kvserve
