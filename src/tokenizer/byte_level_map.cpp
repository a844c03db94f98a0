#include "tokenizer/byte_level_map.h"

#include "tokenizer/utf8.h"

namespace kvserve {

ByteLevelMap::ByteLevelMap() {
  cp_to_byte_.fill(-1);
  // Printable Latin-1 bytes map to themselves; the rest (controls, space, 0x7F-0xA0, 0xAD)
  // take consecutive code points from U+0100.
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
    AppendUtf8(cp, byte_to_text_[b]);
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

void ByteLevelMap::Encode(std::string_view bytes, std::string& out) const {
  for (char c : bytes) out += byte_to_text_[static_cast<uint8_t>(c)];
}

void ByteLevelMap::Decode(std::string_view piece, std::string& out) const {
  size_t i = 0;
  while (i < piece.size()) {
    const size_t len = ValidUtf8Len(piece, i);
    if (len == 0) {
      out.push_back(piece[i++]);
      continue;
    }
    const uint32_t cp = DecodeUtf8(piece, i, len);
    if (cp < cp_to_byte_.size() && cp_to_byte_[cp] >= 0) {
      out.push_back(static_cast<char>(cp_to_byte_[cp]));
    } else {
      out.append(piece.substr(i, len));
    }
    i += len;
  }
}

}  // namespace kvserve
