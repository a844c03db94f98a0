// GPT-2's reversible map between bytes and printable code points, which byte-level BPE
// vocabularies use to spell every byte string as text (space -> "Ġ", newline -> "Ċ").
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvserve {

class ByteLevelMap {
 public:
  ByteLevelMap();

  // Appends the mapped spelling of raw bytes.
  void Encode(std::string_view bytes, std::string& out) const;

  // Appends the raw bytes a vocabulary piece spells. Code points outside the map
  // (never produced by Encode) are copied through as UTF-8.
  void Decode(std::string_view piece, std::string& out) const;

 private:
  std::array<std::string, 256> byte_to_text_;
  std::array<int16_t, 512> cp_to_byte_;  // the map's code points are all < 512; -1 = none
};

}  // namespace kvserve
