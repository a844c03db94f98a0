#include "tokenizer/utf8.h"

namespace kvserve {

size_t Utf8LeadLen(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

size_t ValidUtf8Len(std::string_view s, size_t pos) {
  const size_t n = s.size();
  if (pos >= n) return 0;
  const uint8_t c = static_cast<uint8_t>(s[pos]);
  if (c < 0x80) return 1;
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (rules out overlongs/surrogates)
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (pos + len > n) return 0;
  const uint8_t c1 = static_cast<uint8_t>(s[pos + 1]);
  if (c1 < lo || c1 > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    const uint8_t ci = static_cast<uint8_t>(s[pos + i]);
    if (ci < 0x80 || ci > 0xBF) return 0;
  }
  return len;
}

size_t IncompleteUtf8Tail(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is cut off by the end of s.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3;
    else if (c >= 0xF0 && c <= 0xF4) need = 4;
    else return 0;
    if (need <= back) return 0;  // complete (or over-long run): nothing to hold back
    // The bytes present must be a valid prefix, else waiting cannot help.
    std::string padded(s.substr(n - back));
    // Complete the prefix with the smallest continuation bytes allowed after it.
    static constexpr char kFill[4] = {'\x80', '\x80', '\x80', '\x80'};
    padded.append(kFill, need - back);
    // E0/F0 need a higher second byte; ED/F4 a lower one. Try both extremes.
    if (back == 1) {
      if (c == 0xE0) padded[1] = '\xA0';
      if (c == 0xF0) padded[1] = '\x90';
    }
    if (ValidUtf8Len(padded, 0) == need) return back;
    return 0;
  }
  return 0;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t DecodeUtf8(std::string_view s, size_t pos, size_t len) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[pos + i])); };
  switch (len) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t len = ValidUtf8Len(s, i);
    if (len > 0) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    // A truncated but otherwise valid prefix is one maximal subpart (one U+FFFD);
    // anything else is replaced byte by byte.
    size_t skip = 1;
    for (size_t k = 3; k >= 2; --k) {
      if (i + k <= s.size() && IncompleteUtf8Tail(s.substr(i, k)) == k) {
        skip = k;
        break;
      }
    }
    out.append("\xEF\xBF\xBD");
    i += skip;
  }
  return out;
}

}  // namespace kvserve
