#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace kvserve::chat {

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::Undefined(std::string why) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(why));
  return v;
}
Value Value::List(ValueList items) {
  Value v;
  v.kind_ = Kind::kList;
  for (const Value& e : items) v.depth_ = std::max(v.depth_, e.depth_ + 1);
  if (items.empty()) v.depth_ = 1;
  v.list_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}
Value Value::Tuple(ValueList items) {
  Value v = List(std::move(items));
  v.tuple_ = true;
  return v;
}
Value Value::Dict(ValueDict items) {
  Value v;
  v.kind_ = Kind::kDict;
  for (const auto& kv : items) v.depth_ = std::max(v.depth_, kv.second.depth_ + 1);
  if (items.empty()) v.depth_ = 1;
  v.dict_ = std::make_shared<ValueDict>(std::move(items));
  return v;
}
Value Value::Namespace(ValueDict items) {
  Value v = Dict(std::move(items));
  v.kind_ = Kind::kNamespace;
  return v;
}
Value Value::Builtin(std::string name) {
  Value v = String(std::move(name));
  v.kind_ = Kind::kBuiltin;
  return v;
}
Value Value::Macro(const Stmt* macro) {
  Value v;
  v.kind_ = Kind::kMacro;
  v.macro_ = macro;
  return v;
}

namespace {
template <typename J>
Value FromJsonImpl(const J& j, int level = 0) {
  // Deeper input than a template may build is cut off (as None) rather than recursed into.
  if (level > kMaxValueDepth) return Value::None();
  switch (j.type()) {
    case J::value_t::null: return Value::None();
    case J::value_t::boolean: return Value::Bool(j.template get<bool>());
    case J::value_t::number_integer: return Value::Int(j.template get<int64_t>());
    case J::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      // Python ints are unbounded; beyond int64 keep the magnitude as a float.
      return u > static_cast<uint64_t>(INT64_MAX) ? Value::Float(static_cast<double>(u)) : Value::Int(static_cast<int64_t>(u));
    }
    case J::value_t::number_float: return Value::Float(j.template get<double>());
    case J::value_t::string: return Value::String(j.template get<std::string>());
    case J::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJsonImpl(e, level + 1));
      return Value::List(std::move(items));
    }
    case J::value_t::object: {
      ValueDict items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(it.key(), FromJsonImpl(it.value(), level + 1));
      return Value::Dict(std::move(items));
    }
    default: return Value::None();  // binary and discarded values have no template meaning
  }
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const double a = std::fabs(d);
  // Python's repr: shortest round-trip digits, positional in [1e-4, 1e16), else exponent.
  if (a == 0 || (a >= 1e-4 && a < 1e16)) {
    auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::fixed);
    std::string s(buf, r.ptr);
    if (s.find('.') == std::string::npos) s += ".0";
    return s;
  }
  auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  return std::string(buf, r.ptr);
}

std::string StringRepr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

void JsonString(const std::string& s, std::string* out) {
  *out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          *out += static_cast<char>(c);
        }
    }
  }
  *out += '"';
}

constexpr int kMaxJsonDepth = 256;

Status JsonDump(const Value& v, int indent, int level, std::string* out) {
  if (level > kMaxJsonDepth) return Status::InvalidArgument("tojson: value nested too deeply");
  if (out->size() > kMaxStringBytes) return Status::ResourceExhausted("tojson: output exceeds " + std::to_string(kMaxStringBytes) + " bytes");
  const auto newline = [&](int lvl) {
    *out += '\n';
    out->append(static_cast<size_t>(indent) * lvl, ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Status::InvalidArgument("tojson: Object of type Undefined is not JSON serializable");
    case Value::Kind::kNone: *out += "null"; return Status::Ok();
    case Value::Kind::kBool: *out += v.as_bool() ? "true" : "false"; return Status::Ok();
    case Value::Kind::kInt: *out += std::to_string(v.as_int()); return Status::Ok();
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      *out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d);
      return Status::Ok();
    }
    case Value::Kind::kString: JsonString(v.str(), out); return Status::Ok();
    case Value::Kind::kList: {
      if (v.list().empty()) { *out += "[]"; return Status::Ok(); }
      *out += '[';
      bool first = true;
      for (const Value& e : v.list()) {
        if (!first) *out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(level + 1);
        KV_RETURN_IF_ERROR(JsonDump(e, indent, level + 1, out));
      }
      if (indent >= 0) newline(level);
      *out += ']';
      return Status::Ok();
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      if (v.dict().empty()) { *out += "{}"; return Status::Ok(); }
      *out += '{';
      bool first = true;
      for (const auto& [k, e] : v.dict()) {
        if (!first) *out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(level + 1);
        JsonString(k, out);
        *out += ": ";
        KV_RETURN_IF_ERROR(JsonDump(e, indent, level + 1, out));
      }
      if (indent >= 0) newline(level);
      *out += '}';
      return Status::Ok();
    }
    case Value::Kind::kBuiltin:
    case Value::Kind::kMacro:
      return Status::InvalidArgument("tojson: Object of type function is not JSON serializable");
  }
  return Status::Ok();
}
}  // namespace

Value Value::FromJson(const nlohmann::json& j) { return FromJsonImpl(j); }
Value Value::FromJson(const nlohmann::ordered_json& j) { return FromJsonImpl(j); }

const Value* Value::Find(const std::string& key) const {
  for (const auto& [k, v] : *dict_) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool:
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0;
    case Kind::kString: return !s_->empty();
    case Kind::kList: return !list_->empty();
    case Kind::kDict: return !dict_->empty();
    default: return true;
  }
}

StatusOr<std::string> Value::ToString() const {
  if (kind_ == Kind::kUndefined) return std::string();
  if (kind_ == Kind::kString) return *s_;
  return Repr();
}

StatusOr<std::string> Value::Repr() const {
  std::string out;
  if (!AppendRepr(&out)) return Status::ResourceExhausted("printed value exceeds " + std::to_string(kMaxStringBytes) + " bytes");
  return out;
}

bool Value::AppendRepr(std::string* out) const {
  switch (kind_) {
    case Kind::kUndefined: break;
    case Kind::kNone: *out += "None"; break;
    case Kind::kBool: *out += i_ ? "True" : "False"; break;
    case Kind::kInt: *out += std::to_string(i_); break;
    case Kind::kFloat: *out += FloatRepr(f_); break;
    case Kind::kString: *out += StringRepr(*s_); break;
    case Kind::kList: {
      *out += tuple_ ? '(' : '[';
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) *out += ", ";
        if (!(*list_)[i].AppendRepr(out)) return false;
      }
      if (tuple_ && list_->size() == 1) *out += ',';
      *out += tuple_ ? ')' : ']';
      break;
    }
    case Kind::kDict: {
      *out += '{';
      for (size_t i = 0; i < dict_->size(); ++i) {
        if (i) *out += ", ";
        *out += StringRepr((*dict_)[i].first) + ": ";
        if (!(*dict_)[i].second.AppendRepr(out)) return false;
      }
      *out += '}';
      break;
    }
    case Kind::kNamespace: *out += "<Namespace>"; break;
    case Kind::kBuiltin: *out += "<function " + *s_ + ">"; break;
    case Kind::kMacro: *out += "<Macro>"; break;
  }
  return out->size() <= kMaxStringBytes;
}

StatusOr<std::string> Value::ToJson(int indent) const {
  std::string out;
  KV_RETURN_IF_ERROR(JsonDump(*this, indent, 0, &out));
  return out;
}

bool Value::Equals(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (kind_ != Kind::kFloat && o.kind_ != Kind::kFloat) return i_ == o.i_;
    return as_double() == o.as_double();
  }
  if (kind_ != o.kind_) {
    // A namespace never equals a dict, mirroring Python's distinct types.
    return false;
  }
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return *s_ == *o.s_;
    case Kind::kList: {
      if (list_->size() != o.list_->size()) return false;
      for (size_t i = 0; i < list_->size(); ++i) {
        if (!(*list_)[i].Equals((*o.list_)[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (dict_->size() != o.dict_->size()) return false;
      for (const auto& [k, v] : *dict_) {
        const Value* ov = o.Find(k);
        if (ov == nullptr || !v.Equals(*ov)) return false;
      }
      return true;
    }
    case Kind::kNamespace: return dict_ == o.dict_;
    case Kind::kBuiltin: return *s_ == *o.s_;
    case Kind::kMacro: return macro_ == o.macro_;
    default: return false;
  }
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kBuiltin:
    case Kind::kMacro: return "function";
  }
  return "?";
}

std::vector<std::string> Utf8Units(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + len > s.size()) len = 1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        len = 1;
        break;
      }
    }
    out.emplace_back(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace kvserve::chat
