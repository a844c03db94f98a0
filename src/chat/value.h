// Value: the dynamic value of the chat-template interpreter (Python/Jinja semantics).
// Lists and dicts are shared and immutable once built, so copies are cheap; a
// namespace() object is the one mutable container (Jinja's `ns.x = ...`). Dicts keep
// insertion order, as Python dicts do, so tojson prints keys in the order given.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace kvserve::chat {

struct Stmt;
class Value;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;

// Bounds on what a template can build, so a hostile template fails cleanly instead of
// exhausting memory or the stack.
inline constexpr size_t kMaxStringBytes = size_t{16} << 20;
inline constexpr size_t kMaxListItems = size_t{1} << 20;
inline constexpr int kMaxValueDepth = 128;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kBuiltin, kMacro };

  Value() = default;  // undefined
  // An undefined value that remembers why, for the error when it is used: "'x' is undefined".
  static Value Undefined(std::string why);
  static Value None() { Value v; v.kind_ = Kind::kNone; return v; }
  static Value Bool(bool b) { Value v; v.kind_ = Kind::kBool; v.i_ = b; return v; }
  static Value Int(int64_t i) { Value v; v.kind_ = Kind::kInt; v.i_ = i; return v; }
  static Value Float(double f) { Value v; v.kind_ = Kind::kFloat; v.f_ = f; return v; }
  static Value String(std::string s);
  static Value List(ValueList items);
  // A Python tuple: a list that prints as (a, b).
  static Value Tuple(ValueList items);
  static Value Dict(ValueDict items);
  static Value Namespace(ValueDict items);
  static Value Builtin(std::string name);  // a global function such as raise_exception
  static Value Macro(const Stmt* macro);   // REQUIRES: the AST outlives the value

  static Value FromJson(const nlohmann::json& j);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kBuiltin || kind_ == Kind::kMacro; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }  // also bools
  double as_double() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_); }
  const std::string& str() const { return *s_; }  // REQUIRES: string or builtin
  // Why an undefined value is undefined (empty when unknown).
  std::string undefined_reason() const { return s_ ? *s_ : std::string(); }
  const ValueList& list() const { return *list_; }  // REQUIRES: is_list()
  const ValueDict& dict() const { return *dict_; }  // REQUIRES: is_mapping()
  ValueDict& mutable_namespace() const { return *dict_; }  // REQUIRES: kind() == kNamespace
  const Stmt* macro() const { return macro_; }

  // Dict lookup; nullptr when absent. REQUIRES: is_mapping().
  const Value* Find(const std::string& key) const;

  // Python truthiness.
  bool Truthy() const;
  // Python str(): what {{ x }} prints (undefined prints nothing). Fails only when the
  // text would exceed kMaxStringBytes.
  StatusOr<std::string> ToString() const;
  // Python repr(): strings quoted, as inside printed containers.
  StatusOr<std::string> Repr() const;
  // Nesting depth of lists/dicts (scalars are 0).
  int depth() const { return depth_; }
  bool is_tuple() const { return tuple_; }
  // Python json.dumps(x, ensure_ascii=False[, indent]) as Hugging Face's tojson does.
  StatusOr<std::string> ToJson(int indent) const;
  // Python ==.
  bool Equals(const Value& o) const;
  // Name of the Python/Jinja type for error messages.
  std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<ValueDict> dict_;  // const for kDict by convention; mutable for kNamespace
  const Stmt* macro_ = nullptr;
  int depth_ = 0;
  bool tuple_ = false;

  bool AppendRepr(std::string* out) const;  // false once out exceeds kMaxStringBytes
};

// Code points of a UTF-8 string (invalid bytes are kept as single units so that
// slicing never loses input), and back.
std::vector<std::string> Utf8Units(const std::string& s);

}  // namespace kvserve::chat
