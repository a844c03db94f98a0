#include "model/vocab_loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "model/gguf_reader.h"
#include "util/mapped_file.h"

namespace kvserve {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------
// Shared helpers

// Texts of tokens that end a turn or a document in the families we serve; llama.cpp treats
// the same pieces as end-of-generation when the vocabulary has them.
constexpr const char* kEogTexts[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                     "<|endoftext|>", "<|end_of_text|>", "<EOT>", "<|END_OF_TURN_TOKEN|>"};

void AddEogByText(VocabSpec& spec) {
  for (const char* text : kEogTexts) {
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      if (spec.tokens[i] == text) {
        const TokenType t = spec.types.empty() ? TokenType::kNormal : spec.types[i];
        if (t == TokenType::kControl || t == TokenType::kUserDefined) spec.eog_ids.push_back(static_cast<int>(i));
      }
    }
  }
  if (spec.eos_id >= 0) spec.eog_ids.push_back(spec.eos_id);
  std::sort(spec.eog_ids.begin(), spec.eog_ids.end());
  spec.eog_ids.erase(std::unique(spec.eog_ids.begin(), spec.eog_ids.end()), spec.eog_ids.end());
}

int FindPiece(const VocabSpec& spec, std::string_view text) {
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    if (spec.tokens[i] == text) return static_cast<int>(i);
  }
  return -1;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IOError(path + ": read failed");
  return ss.str();
}

StatusOr<json> ReadJson(const std::string& path) {
  KV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corrupt(path + ": not valid JSON");
  if (!j.is_object()) return Status::Corrupt(path + ": top level is not a JSON object");
  return j;
}

bool FileExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

// ---------------------------------------------------------------------------------------
// SentencePiece model protobuf, parsed by hand (no protobuf dependency). Only the fields a
// tokenizer needs are read; all others are skipped by wire type. Every read is bounds-checked.

class ProtoReader {
 public:
  ProtoReader(const uint8_t* data, size_t size, size_t base, const std::string* path)
      : p_(data), n_(size), base_(base), path_(path) {}

  bool done() const { return pos_ >= n_; }
  size_t offset() const { return base_ + pos_; }

  Status Error(const std::string& what) const {
    return Status::Corrupt(*path_ + ": SentencePiece model: " + what + " at byte " + std::to_string(offset()));
  }

  Status Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= n_) return Error("truncated varint");
      const uint8_t b = p_[pos_++];
      r |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return Status::Ok();
      }
    }
    return Error("varint longer than 10 bytes");
  }

  Status Tag(uint32_t* field, uint32_t* wire) {
    uint64_t t = 0;
    KV_RETURN_IF_ERROR(Varint(&t));
    *field = static_cast<uint32_t>(t >> 3);
    *wire = static_cast<uint32_t>(t & 7);
    if (*field == 0 || t >> 3 > 0x1FFFFFFF) return Error("invalid field number");
    return Status::Ok();
  }

  Status Fixed32(uint32_t* v) {
    if (n_ - pos_ < 4) return Error("truncated fixed32");
    std::memcpy(v, p_ + pos_, 4);  // protobuf is little-endian, as are our targets
    pos_ += 4;
    return Status::Ok();
  }

  Status Bytes(const uint8_t** data, size_t* size) {
    uint64_t len;
    KV_RETURN_IF_ERROR(Varint(&len));
    if (len > n_ - pos_) return Error("length " + std::to_string(len) + " runs past the end of its message");
    *data = p_ + pos_;
    *size = static_cast<size_t>(len);
    pos_ += *size;
    return Status::Ok();
  }

  Status Skip(uint32_t wire) {
    uint64_t v = 0;
    uint32_t f32 = 0;
    const uint8_t* d;
    size_t s;
    switch (wire) {
      case 0: return Varint(&v);
      case 1:
        if (n_ - pos_ < 8) return Error("truncated fixed64");
        pos_ += 8;
        return Status::Ok();
      case 2: return Bytes(&d, &s);
      case 5: return Fixed32(&f32);
      default: return Error("unsupported wire type " + std::to_string(wire));
    }
  }

  ProtoReader Sub(const uint8_t* data, size_t size) const {
    return ProtoReader(data, size, base_ + static_cast<size_t>(data - p_), path_);
  }

  Status Expect(uint32_t wire, uint32_t want, const char* field) const {
    if (wire == want) return Status::Ok();
    return Error(std::string("field ") + field + " has wire type " + std::to_string(wire) + ", expected " +
                 std::to_string(want));
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  size_t base_;
  const std::string* path_;
};

struct SpTrainer {
  int model_type = 1;  // UNIGRAM is protobuf's default
  bool has_model_type = false;
  bool byte_fallback = false;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
};

struct SpNormalizer {
  std::string name;
  bool add_dummy_prefix = true;
};

Status ParseSpPiece(ProtoReader r, VocabSpec& spec) {
  std::string piece;
  bool has_piece = false;
  float score = 0.0f;
  uint64_t type = 1;  // NORMAL
  while (!r.done()) {
    uint32_t f, w;
    KV_RETURN_IF_ERROR(r.Tag(&f, &w));
    if (f == 1) {
      KV_RETURN_IF_ERROR(r.Expect(w, 2, "piece"));
      const uint8_t* d;
      size_t s;
      KV_RETURN_IF_ERROR(r.Bytes(&d, &s));
      piece.assign(reinterpret_cast<const char*>(d), s);
      has_piece = true;
    } else if (f == 2) {
      KV_RETURN_IF_ERROR(r.Expect(w, 5, "score"));
      uint32_t bits = 0;
      KV_RETURN_IF_ERROR(r.Fixed32(&bits));
      std::memcpy(&score, &bits, 4);
    } else if (f == 3) {
      KV_RETURN_IF_ERROR(r.Expect(w, 0, "type"));
      KV_RETURN_IF_ERROR(r.Varint(&type));
    } else {
      KV_RETURN_IF_ERROR(r.Skip(w));
    }
  }
  if (!has_piece || piece.empty()) return r.Error("piece #" + std::to_string(spec.tokens.size()) + " has no text");
  if (type < 1 || type > 6) {
    return r.Error("piece #" + std::to_string(spec.tokens.size()) + " has unknown type " + std::to_string(type));
  }
  if (!std::isfinite(score)) return r.Error("piece #" + std::to_string(spec.tokens.size()) + " has a non-finite score");
  spec.tokens.push_back(std::move(piece));
  spec.scores.push_back(score);
  spec.types.push_back(static_cast<TokenType>(type));  // SentencePiece's enum values equal ours
  return Status::Ok();
}

Status ParseSpTrainer(ProtoReader r, SpTrainer& t) {
  while (!r.done()) {
    uint32_t f, w;
    KV_RETURN_IF_ERROR(r.Tag(&f, &w));
    uint64_t v = 0;
    switch (f) {
      case 3:
      case 35:
      case 40:
      case 41:
      case 42:
      case 43:
        KV_RETURN_IF_ERROR(r.Expect(w, 0, "trainer_spec varint"));
        KV_RETURN_IF_ERROR(r.Varint(&v));
        break;
      default:
        KV_RETURN_IF_ERROR(r.Skip(w));
        continue;
    }
    // int32 fields arrive sign-extended to 64 bits (-1 is ten bytes).
    const int32_t i32 = static_cast<int32_t>(static_cast<uint32_t>(v));
    if (f == 3) {
      t.model_type = i32;
      t.has_model_type = true;
    } else if (f == 35) {
      t.byte_fallback = v != 0;
    } else if (f == 40) {
      t.unk_id = i32;
    } else if (f == 41) {
      t.bos_id = i32;
    } else if (f == 42) {
      t.eos_id = i32;
    } else {
      t.pad_id = i32;
    }
  }
  return Status::Ok();
}

Status ParseSpNormalizer(ProtoReader r, SpNormalizer& n) {
  while (!r.done()) {
    uint32_t f, w;
    KV_RETURN_IF_ERROR(r.Tag(&f, &w));
    if (f == 1) {
      KV_RETURN_IF_ERROR(r.Expect(w, 2, "normalizer name"));
      const uint8_t* d;
      size_t s;
      KV_RETURN_IF_ERROR(r.Bytes(&d, &s));
      n.name.assign(reinterpret_cast<const char*>(d), s);
    } else if (f == 3) {
      KV_RETURN_IF_ERROR(r.Expect(w, 0, "add_dummy_prefix"));
      uint64_t v = 0;
      KV_RETURN_IF_ERROR(r.Varint(&v));
      n.add_dummy_prefix = v != 0;
    } else {
      KV_RETURN_IF_ERROR(r.Skip(w));
    }
  }
  return Status::Ok();
}

const char* SpModelTypeName(int t) {
  switch (t) {
    case 1: return "UNIGRAM";
    case 2: return "BPE";
    case 3: return "WORD";
    case 4: return "CHAR";
    default: return "unknown";
  }
}

StatusOr<VocabSpec> ParseSentencePiece(const uint8_t* data, size_t size, const std::string& path) {
  VocabSpec spec;
  spec.kind = VocabSpec::Kind::kSentencePiece;
  spec.pre_tokenizer = "default";
  SpTrainer trainer;
  SpNormalizer normalizer;
  bool has_trainer = false;
  ProtoReader r(data, size, 0, &path);
  while (!r.done()) {
    uint32_t f, w;
    KV_RETURN_IF_ERROR(r.Tag(&f, &w));
    if (f == 1 || f == 2 || f == 3) {
      KV_RETURN_IF_ERROR(r.Expect(w, 2, f == 1 ? "pieces" : f == 2 ? "trainer_spec" : "normalizer_spec"));
      const uint8_t* d;
      size_t s;
      KV_RETURN_IF_ERROR(r.Bytes(&d, &s));
      if (f == 1) {
        KV_RETURN_IF_ERROR(ParseSpPiece(r.Sub(d, s), spec));
      } else if (f == 2) {
        has_trainer = true;
        KV_RETURN_IF_ERROR(ParseSpTrainer(r.Sub(d, s), trainer));
      } else {
        KV_RETURN_IF_ERROR(ParseSpNormalizer(r.Sub(d, s), normalizer));
      }
    } else {
      KV_RETURN_IF_ERROR(r.Skip(w));
    }
  }
  const size_t n = spec.tokens.size();
  if (n == 0) return Status::Corrupt(path + ": SentencePiece model has no pieces");
  if (!has_trainer) return Status::Corrupt(path + ": SentencePiece model has no trainer_spec");
  // Score-driven pair merging reproduces SentencePiece only for BPE-trained models.
  if (trainer.model_type != 2) {
    return Status::Unsupported(path + ": SentencePiece model_type " + SpModelTypeName(trainer.model_type) +
                               " is not supported (only BPE)");
  }
  const auto check_id = [&](int id, const char* what) -> Status {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return Status::Corrupt(path + ": SentencePiece trainer_spec " + what + " " + std::to_string(id) +
                             " is outside the " + std::to_string(n) + " pieces");
    }
    return Status::Ok();
  };
  KV_RETURN_IF_ERROR(check_id(trainer.unk_id, "unk_id"));
  KV_RETURN_IF_ERROR(check_id(trainer.bos_id, "bos_id"));
  KV_RETURN_IF_ERROR(check_id(trainer.eos_id, "eos_id"));
  KV_RETURN_IF_ERROR(check_id(trainer.pad_id, "pad_id"));
  if (trainer.byte_fallback) {
    int bytes = 0;
    for (TokenType t : spec.types) bytes += t == TokenType::kByte;
    if (bytes != 256) {
      return Status::Corrupt(path + ": SentencePiece model has byte_fallback but " + std::to_string(bytes) +
                             " byte pieces (expected 256)");
    }
  }
  spec.unk_id = trainer.unk_id;
  spec.bos_id = trainer.bos_id;
  spec.eos_id = trainer.eos_id;
  spec.pad_id = trainer.pad_id;
  spec.add_bos = spec.bos_id >= 0;  // SentencePiece Llama tokenizers prepend BOS
  spec.add_eos = false;
  spec.add_space_prefix = normalizer.add_dummy_prefix;
  AddEogByText(spec);
  return spec;
}

// ---------------------------------------------------------------------------------------
// Hugging Face tokenizer.json

// Pre-tokenizer regexes of tokenizer.json files, by family name as Tokenizer knows them.
constexpr const char* kJsonLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kJsonQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool IsByteLevel(const json& j) { return j.is_object() && j.value("type", "") == "ByteLevel"; }

// True if j or any nested pre-tokenizer/decoder step is ByteLevel.
bool HasByteLevelStep(const json& j) {
  if (IsByteLevel(j)) return true;
  if (j.is_object()) {
    for (const char* key : {"pretokenizers", "decoders"}) {
      if (j.contains(key) && j[key].is_array()) {
        for (const json& step : j[key]) {
          if (HasByteLevelStep(step)) return true;
        }
      }
    }
  }
  return false;
}

// Maps the pre_tokenizer definition to a family name; "" if it is not one we support.
std::string ByteLevelPreTokenizerName(const json& pre) {
  if (IsByteLevel(pre)) {
    if (pre.value("add_prefix_space", false)) return "";
    return pre.value("use_regex", true) ? "gpt2" : "";
  }
  if (!pre.is_object() || pre.value("type", "") != "Sequence") return "";
  const json& seq = pre["pretokenizers"];
  if (!seq.is_array() || seq.size() != 2 || !IsByteLevel(seq[1]) || seq[1].value("add_prefix_space", false)) return "";
  const json& first = seq[0];
  const bool byte_regex = seq[1].value("use_regex", true);
  if (first.value("type", "") == "Digits" && first.value("individual_digits", false) && byte_regex) return "smollm";
  if (first.value("type", "") == "Split" && !byte_regex && first.value("behavior", "") == "Isolated" &&
      !first.value("invert", false) && first.contains("pattern") && first["pattern"].is_object()) {
    const std::string re = first["pattern"].value("Regex", "");
    if (re == kJsonLlama3Regex) return "llama3";
    if (re == kJsonQwen2Regex) return "qwen2";
  }
  return "";
}

// "<s>" or {"content": "<s>", ...} -> "<s>"; "" for null/absent.
std::string TokenString(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

Status ApplyTokenizerConfig(const json& cfg, const std::string& path, VocabSpec& spec, bool* has_add_bos) {
  const auto id_of = [&](const char* key, int* out) -> Status {
    const std::string text = TokenString(cfg, key);
    if (text.empty()) return Status::Ok();
    const int id = FindPiece(spec, text);
    if (id < 0) return Status::Corrupt(path + ": " + key + " '" + text + "' is not in the vocabulary");
    *out = id;
    return Status::Ok();
  };
  KV_RETURN_IF_ERROR(id_of("bos_token", &spec.bos_id));
  KV_RETURN_IF_ERROR(id_of("eos_token", &spec.eos_id));
  KV_RETURN_IF_ERROR(id_of("unk_token", &spec.unk_id));
  KV_RETURN_IF_ERROR(id_of("pad_token", &spec.pad_id));
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    spec.add_bos = cfg["add_bos_token"].get<bool>();
    *has_add_bos = true;
  }
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) spec.add_eos = cfg["add_eos_token"].get<bool>();
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      spec.chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const json& e : ct) {
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string()) {
          spec.chat_template = e["template"].get<std::string>();
        }
      }
    }
  }
  return Status::Ok();
}

// True when the post-processor template inserts the BOS token itself.
bool PostProcessorAddsBos(const json& tj, const VocabSpec& spec) {
  if (spec.bos_id < 0 || !tj.contains("post_processor") || !tj["post_processor"].is_object()) return false;
  const std::string dump = tj["post_processor"].dump();
  return tj["post_processor"].value("type", "") == "TemplateProcessing" &&
         dump.find(json(spec.tokens[spec.bos_id]).dump()) != std::string::npos;
}

StatusOr<VocabSpec> ParseTokenizerJson(const json& tj, const std::string& path) {
  if (!tj.contains("model") || !tj["model"].is_object()) return Status::Corrupt(path + ": no \"model\" object");
  const json& model = tj["model"];
  const std::string type = model.value("type", "");
  if (type != "BPE") {
    return Status::Unsupported(path + ": tokenizer model type '" + type + "' is not supported (only BPE)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) return Status::Corrupt(path + ": model.vocab is not an object");

  VocabSpec spec;
  // Collect (id, text) from the vocabulary and the added tokens; ids must be dense.
  std::vector<std::pair<int64_t, std::string>> entries;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) return Status::Corrupt(path + ": vocab entry '" + it.key() + "' has a non-integer id");
    entries.emplace_back(it.value().get<int64_t>(), it.key());
  }
  struct Added {
    int64_t id;
    std::string text;
    bool special;
  };
  std::vector<Added> added;
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const json& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string()) {
        return Status::Corrupt(path + ": malformed entry in added_tokens");
      }
      added.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false)});
    }
  }
  int64_t max_id = -1;
  for (const auto& e : entries) max_id = std::max(max_id, e.first);
  for (const auto& a : added) max_id = std::max(max_id, a.id);
  if (max_id < 0) return Status::Corrupt(path + ": empty vocabulary");
  if (max_id >= (1 << 24)) return Status::Corrupt(path + ": token id " + std::to_string(max_id) + " is implausibly large");
  for (const auto& e : entries) {
    if (e.first < 0) return Status::Corrupt(path + ": vocab entry '" + e.second + "' has a negative id");
  }
  spec.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  spec.types.assign(spec.tokens.size(), TokenType::kNormal);
  std::vector<bool> seen(spec.tokens.size(), false);
  for (auto& e : entries) {
    if (seen[e.first]) return Status::Corrupt(path + ": token id " + std::to_string(e.first) + " appears twice in model.vocab");
    seen[e.first] = true;
    spec.tokens[e.first] = std::move(e.second);
  }
  for (auto& a : added) {
    if (a.id < 0) return Status::Corrupt(path + ": added token '" + a.text + "' has a negative id");
    if (a.text.empty()) return Status::Corrupt(path + ": added token " + std::to_string(a.id) + " is empty");
    seen[a.id] = true;
    spec.tokens[a.id] = a.text;
    spec.types[a.id] = a.special ? TokenType::kControl : TokenType::kUserDefined;
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) return Status::Corrupt(path + ": token id " + std::to_string(i) + " is missing (ids must be dense)");
  }

  if (model.contains("merges")) {
    const json& merges = model["merges"];
    if (!merges.is_array()) return Status::Corrupt(path + ": model.merges is not an array");
    spec.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      if (m.is_string()) {
        spec.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        return Status::Corrupt(path + ": model.merges[" + std::to_string(i) + "] is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }

  const json null_json;
  const json& pre = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : null_json;
  const json& dec = tj.contains("decoder") ? tj["decoder"] : null_json;
  const json& norm = tj.contains("normalizer") ? tj["normalizer"] : null_json;
  const bool byte_level = HasByteLevelStep(dec) || HasByteLevelStep(pre);
  if (byte_level) {
    spec.kind = VocabSpec::Kind::kByteLevelBpe;
    spec.pre_tokenizer = ByteLevelPreTokenizerName(pre);
    if (spec.pre_tokenizer.empty()) {
      return Status::Unsupported(path + ": pre_tokenizer " + pre.dump().substr(0, 200) + " is not supported");
    }
    // NFC (Qwen) leaves already-composed text unchanged; other normalizers would change ids.
    if (!norm.is_null() && norm.value("type", "") != "NFC") {
      return Status::Unsupported(path + ": normalizer " + norm.dump().substr(0, 200) + " is not supported");
    }
    spec.add_space_prefix = false;
  } else if (model.value("byte_fallback", false) || dec.dump().find("\xE2\x96\x81") != std::string::npos) {
    // SentencePiece-style BPE exported to tokenizer.json (Llama 2 / Mistral): merges become
    // scores, so that earlier merges (better ranks) win, as in the original model.
    spec.kind = VocabSpec::Kind::kSentencePiece;
    spec.pre_tokenizer = "default";
    spec.scores.assign(spec.tokens.size(), 0.0f);
    std::unordered_map<std::string, int> index;
    for (size_t i = 0; i < spec.tokens.size(); ++i) index[spec.tokens[i]] = static_cast<int>(i);
    for (size_t r = 0; r < spec.merges.size(); ++r) {
      std::string joined = spec.merges[r];
      const size_t sp = joined.find(' ');
      if (sp == std::string::npos) continue;
      joined.erase(sp, 1);
      auto it = index.find(joined);
      if (it != index.end() && spec.scores[it->second] == 0.0f) spec.scores[it->second] = -static_cast<float>(r + 1);
    }
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      const std::string& t = spec.tokens[i];
      if (spec.types[i] == TokenType::kNormal && t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') {
        spec.types[i] = TokenType::kByte;
      }
    }
    spec.merges.clear();
    spec.add_space_prefix = norm.dump().find("Prepend") != std::string::npos ||
                            pre.dump().find("\"prepend_scheme\":\"always\"") != std::string::npos ||
                            pre.dump().find("\"prepend_scheme\":\"first\"") != std::string::npos;
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      spec.unk_id = FindPiece(spec, model["unk_token"].get<std::string>());
    }
  } else {
    return Status::Unsupported(path + ": BPE tokenizer is neither byte-level nor SentencePiece-style");
  }
  return spec;
}

// ---------------------------------------------------------------------------------------
// GGUF tokenizer.* metadata

// Getter errors name the key; make sure they name the file too.
Status InFile(const GgufFile& g, const Status& s) {
  if (s.ok() || s.message().find(g.path()) != std::string::npos) return s;
  const std::string msg = g.path() + ": " + s.message();
  switch (s.code()) {
    case Status::Code::kNotFound: return Status::NotFound(msg);
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(msg);
    case Status::Code::kUnsupported: return Status::Unsupported(msg);
    default: return Status::Corrupt(msg);
  }
}

// GGUF names of pre-tokenizers -> the names VocabSpec documents.
std::string NormalizePreName(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama-v3" || pre == "llama3") return "llama3";
  if (pre == "gpt-2" || pre == "gpt2") return "gpt2";
  return pre;
}

}  // namespace

StatusOr<VocabSpec> LoadVocabFromGguf(const GgufFile& gguf) {
  const std::string& path = gguf.path();
#define KV_GGUF_ASSIGN(lhs, expr)                       \
  auto KV_CONCAT(_g_, __LINE__) = (expr);               \
  if (!KV_CONCAT(_g_, __LINE__).ok()) return InFile(gguf, KV_CONCAT(_g_, __LINE__).status()); \
  lhs = std::move(KV_CONCAT(_g_, __LINE__)).value()

  KV_GGUF_ASSIGN(const std::string model, gguf.GetStringOr("tokenizer.ggml.model", ""));
  VocabSpec spec;
  if (model.empty()) return Status::NotFound(path + ": no tokenizer.ggml.model (file has no vocabulary)");
  if (model == "no_vocab" || model == "none") return spec;  // kind kNone: a model without a tokenizer
  const bool spm = model == "llama";
  if (!spm && model != "gpt2") {
    return Status::Unsupported(path + ": tokenizer.ggml.model '" + model +
                               "' is not supported (only 'llama' SentencePiece and 'gpt2' byte-level BPE)");
  }
  spec.kind = spm ? VocabSpec::Kind::kSentencePiece : VocabSpec::Kind::kByteLevelBpe;
  KV_GGUF_ASSIGN(spec.tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
  const size_t n = spec.tokens.size();
  if (n == 0) return Status::Corrupt(path + ": tokenizer.ggml.tokens is empty");

  if (gguf.Has("tokenizer.ggml.scores")) {
    KV_GGUF_ASSIGN(spec.scores, gguf.GetFloatArray("tokenizer.ggml.scores"));
    if (spec.scores.size() != n) {
      return Status::Corrupt(path + ": tokenizer.ggml.scores has " + std::to_string(spec.scores.size()) +
                             " entries for " + std::to_string(n) + " tokens");
    }
  } else if (spm) {
    spec.scores.assign(n, 0.0f);  // llama.cpp's default; merges then go leftmost-first
  }
  if (!spm) spec.scores.clear();

  spec.types.assign(n, TokenType::kNormal);
  if (gguf.Has("tokenizer.ggml.token_type")) {
    KV_GGUF_ASSIGN(const std::vector<int64_t> types, gguf.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != n) {
      return Status::Corrupt(path + ": tokenizer.ggml.token_type has " + std::to_string(types.size()) +
                             " entries for " + std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6) {
        return Status::Corrupt(path + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] = " +
                               std::to_string(types[i]) + " is not a token type");
      }
      // 0 is GGUF's "undefined": treat as normal text, as llama.cpp does.
      spec.types[i] = types[i] == 0 ? TokenType::kNormal : static_cast<TokenType>(types[i]);
    }
  }

  if (!spm) {
    if (!gguf.Has("tokenizer.ggml.merges")) return Status::NotFound(path + ": BPE vocabulary has no tokenizer.ggml.merges");
    KV_GGUF_ASSIGN(spec.merges, gguf.GetStringArray("tokenizer.ggml.merges"));
  }
  KV_GGUF_ASSIGN(const std::string pre, gguf.GetStringOr("tokenizer.ggml.pre", "default"));
  spec.pre_tokenizer = spm ? "default" : NormalizePreName(pre);

  // Special ids. Out-of-range values (files write 0xFFFFFFFF for "none") mean absent, as
  // llama.cpp reads them; SentencePiece vocabularies default to <unk>=0, <s>=1, </s>=2.
  const auto read_id = [&](const char* key, int def, int* out) -> Status {
    auto v = gguf.GetIntOr(key, def);
    if (!v.ok()) return InFile(gguf, v.status());
    *out = (*v >= 0 && *v < static_cast<int64_t>(n)) ? static_cast<int>(*v) : -1;
    return Status::Ok();
  };
  KV_RETURN_IF_ERROR(read_id("tokenizer.ggml.bos_token_id", spm ? 1 : -1, &spec.bos_id));
  KV_RETURN_IF_ERROR(read_id("tokenizer.ggml.eos_token_id", spm ? 2 : -1, &spec.eos_id));
  KV_RETURN_IF_ERROR(read_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1, &spec.unk_id));
  KV_RETURN_IF_ERROR(read_id("tokenizer.ggml.padding_token_id", -1, &spec.pad_id));
  int eot = -1, eom = -1;
  KV_RETURN_IF_ERROR(read_id("tokenizer.ggml.eot_token_id", -1, &eot));
  KV_RETURN_IF_ERROR(read_id("tokenizer.ggml.eom_token_id", -1, &eom));
  if (eot >= 0) spec.eog_ids.push_back(eot);
  if (eom >= 0) spec.eog_ids.push_back(eom);

  // llama.cpp's defaults: SentencePiece adds BOS; byte-level BPE only for Llama 3.
  KV_GGUF_ASSIGN(spec.add_bos, gguf.GetBoolOr("tokenizer.ggml.add_bos_token", spm || spec.pre_tokenizer == "llama3"));
  KV_GGUF_ASSIGN(spec.add_eos, gguf.GetBoolOr("tokenizer.ggml.add_eos_token", false));
  KV_GGUF_ASSIGN(spec.add_space_prefix, gguf.GetBoolOr("tokenizer.ggml.add_space_prefix", spm));
  KV_GGUF_ASSIGN(spec.chat_template, gguf.GetStringOr("tokenizer.chat_template", ""));
#undef KV_GGUF_ASSIGN
  AddEogByText(spec);
  return spec;
}

StatusOr<VocabSpec> LoadVocabFromSentencePieceModel(const std::string& path) {
  KV_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  return ParseSentencePiece(file->data(), file->size(), path);
}

StatusOr<VocabSpec> LoadVocabFromTokenizerJson(const std::string& tokenizer_json_path) {
  KV_ASSIGN_OR_RETURN(json tj, ReadJson(tokenizer_json_path));
  KV_ASSIGN_OR_RETURN(VocabSpec spec, ParseTokenizerJson(tj, tokenizer_json_path));
  bool has_add_bos = false;
  const std::string cfg_path =
      (std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json").string();
  if (FileExists(cfg_path)) {
    KV_ASSIGN_OR_RETURN(json cfg, ReadJson(cfg_path));
    KV_RETURN_IF_ERROR(ApplyTokenizerConfig(cfg, cfg_path, spec, &has_add_bos));
  }
  if (!has_add_bos) {
    // No explicit setting: BOS is added when the post-processor template adds it, and for
    // Llama 3's pre-tokenizer (llama.cpp does the same; Meta's tokenizer always adds it).
    spec.add_bos = spec.bos_id >= 0 && (PostProcessorAddsBos(tj, spec) || spec.pre_tokenizer == "llama3" ||
                                        spec.kind == VocabSpec::Kind::kSentencePiece);
  }
  AddEogByText(spec);
  return spec;
}

StatusOr<VocabSpec> LoadVocabFromHfDir(const std::string& dir) {
  const std::filesystem::path d(dir);
  const std::string tj = (d / "tokenizer.json").string();
  const std::string sp = (d / "tokenizer.model").string();
  VocabSpec spec;
  if (FileExists(tj)) {
    KV_ASSIGN_OR_RETURN(spec, LoadVocabFromTokenizerJson(tj));
  } else if (FileExists(sp)) {
    KV_ASSIGN_OR_RETURN(spec, LoadVocabFromSentencePieceModel(sp));
    const std::string cfg_path = (d / "tokenizer_config.json").string();
    if (FileExists(cfg_path)) {
      KV_ASSIGN_OR_RETURN(json cfg, ReadJson(cfg_path));
      bool has_add_bos = false;
      KV_RETURN_IF_ERROR(ApplyTokenizerConfig(cfg, cfg_path, spec, &has_add_bos));
    }
  } else {
    return Status::NotFound(dir + ": no tokenizer.json or tokenizer.model");
  }
  // Model-level ids fill what the tokenizer files leave open; generation_config.json's
  // eos_token_id (int or list) names every id that ends generation.
  const auto read_ids = [&](const std::string& file, bool eog) -> Status {
    const std::string p = (d / file).string();
    if (!FileExists(p)) return Status::Ok();
    KV_ASSIGN_OR_RETURN(json j, ReadJson(p));
    const int n = static_cast<int>(spec.tokens.size());
    const auto valid = [&](const json& v) { return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < n; };
    if (j.contains("bos_token_id") && valid(j["bos_token_id"]) && spec.bos_id < 0) spec.bos_id = j["bos_token_id"].get<int>();
    if (j.contains("eos_token_id")) {
      const json& e = j["eos_token_id"];
      std::vector<int> ids;
      if (valid(e)) ids.push_back(e.get<int>());
      if (e.is_array()) {
        for (const json& x : e) {
          if (!valid(x)) return Status::Corrupt(p + ": eos_token_id entry " + x.dump() + " is not a token id");
          ids.push_back(x.get<int>());
        }
      }
      if (!ids.empty() && spec.eos_id < 0) spec.eos_id = ids.front();
      if (eog) spec.eog_ids.insert(spec.eog_ids.end(), ids.begin(), ids.end());
    }
    return Status::Ok();
  };
  KV_RETURN_IF_ERROR(read_ids("generation_config.json", true));
  KV_RETURN_IF_ERROR(read_ids("config.json", false));
  AddEogByText(spec);
  return spec;
}

}  // namespace kvserve
