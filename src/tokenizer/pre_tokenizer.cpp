#include "tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

namespace kvserve {
namespace {

// GPT-2's pattern ("'s|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+").
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3: case-insensitive contractions, letters with one leading non-letter, digits in
// groups of up to three, newlines kept with the punctuation before them.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kSingleDigit = R"(\p{N})";
// CJK ideographs, a wide pre-CJK block range and Hangul, as DeepSeek's tokenizers split them.
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
// DeepSeek LLM's explicit letter class (cased letters of many scripts, not all of \p{L}).
constexpr const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct =
    R"(\s?[\x{21}-\x{2F}\x{3A}-\x{7E}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";

// Returns false for an unknown name.
bool PatternsForName(std::string_view name, std::vector<std::string>& out) {
  if (name == "gpt2" || name == "gpt-2" || name == "mpt" || name == "olmo" || name == "jais") {
    out = {kGpt2};
  } else if (name == "default" || name.empty()) {
    // llama.cpp's fallback for BPE vocabularies that name no pre-tokenizer (old GGUFs).
    out = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"};
  } else if (name == "llama3" || name == "llama-bpe" || name == "llama-v3" || name == "dbrx" ||
             name == "smaug-bpe" || name == "falcon3") {
    out = {kLlama3};
  } else if (name == "qwen2" || name == "deepseek-r1-qwen" || name == "stablelm2" || name == "hunyuan" ||
             name == "megrez") {
    out = {kQwen2};
  } else if (name == "smollm" || name == "starcoder" || name == "refact" || name == "command-r" ||
             name == "codeshell" || name == "exaone" || name == "minerva-7b") {
    out = {kSingleDigit, kGpt2};
  } else if (name == "falcon") {
    out = {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, R"([0-9][0-9][0-9])"};
  } else if (name == "deepseek-coder") {
    out = {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"};
  } else if (name == "deepseek-llm") {
    out = {R"([\r\n])", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"};
  } else {
    return false;
  }
  return true;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

PreTokenizer::~PreTokenizer() = default;

StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(std::string_view name) {
  std::vector<std::string> patterns;
  if (!PatternsForName(name, patterns)) {
    return Status::Unsupported("pre-tokenizer '" + std::string(name) + "' is not supported");
  }
  return FromPatterns(patterns);
}

StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromPatterns(const std::vector<std::string>& patterns) {
  if (patterns.empty()) return Status::InvalidArgument("pre-tokenizer has no patterns");
  std::unique_ptr<PreTokenizer> pt(new PreTokenizer());
  for (const std::string& p : patterns) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    // MATCH_INVALID_UTF: ill-formed bytes simply never match, instead of failing the call.
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Status::InvalidArgument("pre-tokenizer regex '" + p + "' does not compile at offset " +
                                     std::to_string(err_off) + ": " + reinterpret_cast<const char*>(msg));
    }
    // JIT is an optimisation only; the interpreter gives the same matches.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    auto r = std::make_unique<Regex>();
    r->code = code;
    pt->regexes_.push_back(std::move(r));
  }
  return pt;
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>& out) const {
  std::vector<std::string_view> cur{text};
  std::vector<std::string_view> next;
  if (text.empty()) return;
  for (const auto& re : regexes_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re->code, nullptr);
    KV_CHECK(md != nullptr);
    next.clear();
    for (std::string_view piece : cur) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0;  // first byte not yet assigned to a piece
      size_t pos = 0;    // where the next search begins
      while (pos < piece.size()) {
        int rc = pcre2_match(re->code, subject, piece.size(), pos, 0, md, nullptr);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          // The JIT's small default stack can run out on very long runs; the interpreter
          // uses the heap and gives the same matches.
          rc = pcre2_match(re->code, subject, piece.size(), pos, PCRE2_NO_JIT, md, nullptr);
        }
        if (rc < 0) break;  // no further match (or a resource limit: the rest becomes one gap)
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0], me = ov[1];
        if (me == ms) {  // empty match: our patterns have none, but never loop on one
          pos = ms + 1;
          continue;
        }
        if (ms > start) next.push_back(piece.substr(start, ms - start));
        next.push_back(piece.substr(ms, me - ms));
        start = pos = me;
      }
      if (start < piece.size()) next.push_back(piece.substr(start));
    }
    pcre2_match_data_free(md);
    cur.swap(next);
  }
  out.insert(out.end(), cur.begin(), cur.end());
}

}  // namespace kvserve
