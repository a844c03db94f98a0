// UTF-8 helpers shared by the tokenizers and the incremental detokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvserve {

// Length implied by a lead byte, llama.cpp style: continuation and invalid lead bytes
// count as 1, 0xF0..0xFF as 4. Used to cut text into "characters" for BPE merging.
size_t Utf8LeadLen(uint8_t lead);

// Length of the well-formed UTF-8 sequence at s[pos] (1..4), or 0 if the bytes there are
// not a complete, valid sequence (bad lead, bad continuation, overlong, surrogate, > U+10FFFF).
size_t ValidUtf8Len(std::string_view s, size_t pos);

// Number of trailing bytes of s that are a valid but unfinished UTF-8 prefix (0..3):
// bytes a later chunk may complete, so a streamer must hold them back.
size_t IncompleteUtf8Tail(std::string_view s);

// Appends the UTF-8 encoding of code point cp (REQUIRES: cp <= 0x10FFFF).
void AppendUtf8(uint32_t cp, std::string& out);

// Decodes the valid sequence at s[pos] of length len (as returned by ValidUtf8Len).
uint32_t DecodeUtf8(std::string_view s, size_t pos, size_t len);

// Copies s, replacing each maximal invalid subpart with U+FFFD.
std::string SanitizeUtf8(std::string_view s);

}  // namespace kvserve
