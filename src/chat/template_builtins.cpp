#include "chat/template_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

namespace kvserve::chat {
namespace {

const Value* Arg(const CallArgs& a, size_t index, const char* name) {
  if (index < a.pos.size()) return &a.pos[index];
  for (const auto& [k, v] : a.kw) {
    if (k == name) return &v;
  }
  return nullptr;
}

Status CheckArity(const CallArgs& a, size_t max_pos, const std::string& what) {
  if (a.pos.size() > max_pos) {
    return Status::InvalidArgument(what + " takes at most " + std::to_string(max_pos) + " positional argument(s), got " +
                                   std::to_string(a.pos.size()));
  }
  return Status::Ok();
}

StatusOr<std::string> StrArg(const CallArgs& a, size_t index, const char* name, const std::string& what) {
  const Value* v = Arg(a, index, name);
  if (v == nullptr) return Status::InvalidArgument(what + ": missing argument '" + name + "'");
  if (!v->is_string()) return Status::InvalidArgument(what + ": argument '" + name + "' must be a string, got " + v->TypeName());
  return v->str();
}

bool IsPySpace(const std::string& u) {
  return u.size() == 1 && (u[0] == ' ' || u[0] == '\t' || u[0] == '\n' || u[0] == '\r' || u[0] == '\f' || u[0] == '\v' ||
                           (u[0] >= 0x1c && u[0] <= 0x1f));
}

std::string Join(const std::vector<std::string>& units, size_t a, size_t b) {
  std::string out;
  for (size_t i = a; i < b; ++i) out += units[i];
  return out;
}

std::string AsciiMap(std::string s, int (*f)(int)) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string Capitalize(const std::string& s) {
  std::string out = AsciiMap(s, [](int c) { return std::tolower(c); });
  if (!out.empty() && static_cast<unsigned char>(out[0]) < 0x80) out[0] = static_cast<char>(std::toupper(out[0]));
  return out;
}

std::string Title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    const bool alpha = u < 0x80 && std::isalpha(u);
    if (alpha) c = static_cast<char>(prev_alpha ? std::tolower(u) : std::toupper(u));
    prev_alpha = alpha || u >= 0x80;
  }
  return out;
}

StatusOr<std::string> Replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` between every code point (and at both ends).
    const auto units = Utf8Units(s);
    for (size_t i = 0; i <= units.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < units.size()) out += units[i];
      if (out.size() > kMaxStringBytes) return Status::ResourceExhausted("replace: result exceeds the string size limit");
    }
    return out;
  }
  while (count < 0 || done < count) {
    const size_t f = s.find(from, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += to;
    if (out.size() > kMaxStringBytes) return Status::ResourceExhausted("replace: result exceeds the string size limit");
    pos = f + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Value SplitString(const std::string& s, const std::string* sep, int64_t maxsplit) {
  ValueList parts;
  if (sep == nullptr) {
    const auto units = Utf8Units(s);
    size_t i = 0;
    while (i < units.size()) {
      while (i < units.size() && IsPySpace(units[i])) ++i;
      if (i == units.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t end = units.size();
        while (end > i && IsPySpace(units[end - 1])) --end;
        parts.push_back(Value::String(Join(units, i, end)));
        break;
      }
      size_t j = i;
      while (j < units.size() && !IsPySpace(units[j])) ++j;
      parts.push_back(Value::String(Join(units, i, j)));
      i = j;
    }
    return Value::List(std::move(parts));
  }
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
    const size_t f = s.find(*sep, pos);
    if (f == std::string::npos) break;
    parts.push_back(Value::String(s.substr(pos, f - pos)));
    pos = f + sep->size();
  }
  parts.push_back(Value::String(s.substr(pos)));
  return Value::List(std::move(parts));
}

StatusOr<int64_t> Length(const Value& v, const std::string& what) {
  if (v.is_string()) return static_cast<int64_t>(Utf8Units(v.str()).size());
  if (v.is_list()) return static_cast<int64_t>(v.list().size());
  if (v.is_mapping()) return static_cast<int64_t>(v.dict().size());
  if (v.is_undefined()) return int64_t{0};
  return Status::InvalidArgument(what + ": object of type '" + v.TypeName() + "' has no len()");
}

// Iterating a value the Python way: list items, dict keys, string characters.
StatusOr<ValueList> Iterate(const Value& v, const std::string& what) {
  if (v.is_list()) return v.list();
  if (v.is_undefined()) return ValueList{};
  ValueList out;
  if (v.is_mapping()) {
    for (const auto& kv : v.dict()) out.push_back(Value::String(kv.first));
    return out;
  }
  if (v.is_string()) {
    for (auto& u : Utf8Units(v.str())) out.push_back(Value::String(std::move(u)));
    return out;
  }
  return Status::InvalidArgument(what + ": '" + v.TypeName() + "' object is not iterable");
}

// Jinja's attribute lookup for filters such as map(attribute=...): dotted paths, integer parts index lists.
Value GetAttrPath(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_mapping()) {
      const Value* f = cur.Find(part);
      cur = f ? *f : Value::Undefined("no attribute '" + part + "'");
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const size_t i = std::stoul(part.substr(0, 9));
      cur = i < cur.list().size() ? cur.list()[i] : Value::Undefined("index out of range");
    } else {
      return Value::Undefined("no attribute '" + part + "'");
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

StatusOr<Value> ToInt(const Value& v, const Value* def) {
  const Value fallback = def ? *def : Value::Int(0);
  if (v.is_int() || v.is_bool()) return Value::Int(v.as_int());
  if (v.is_float()) {
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    const std::string t = StripChars(v.str(), nullptr, true, true);
    if (t.empty() || t.size() > 40) return fallback;
    size_t idx = 0;
    try {
      const long long x = std::stoll(t, &idx, 10);
      if (idx == t.size()) return Value::Int(x);
      const double d = std::stod(t, &idx);
      if (idx == t.size() && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::Int(static_cast<int64_t>(d));
    } catch (...) {
    }
    return fallback;
  }
  return fallback;
}

StatusOr<Value> ToFloat(const Value& v, const Value* def) {
  const Value fallback = def ? *def : Value::Float(0);
  if (v.is_number()) return Value::Float(v.as_double());
  if (v.is_string()) {
    const std::string t = StripChars(v.str(), nullptr, true, true);
    if (t.empty() || t.size() > 64) return fallback;
    try {
      size_t idx = 0;
      const double d = std::stod(t, &idx);
      if (idx == t.size()) return Value::Float(d);
    } catch (...) {
    }
  }
  return fallback;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

StatusOr<Value> SortValues(ValueList items, bool reverse, const std::string* attribute, bool case_sensitive) {
  Status err = Status::Ok();
  const auto key = [&](const Value& v) {
    Value k = attribute ? GetAttrPath(v, *attribute) : v;
    if (!case_sensitive && k.is_string()) k = Value::String(AsciiMap(k.str(), [](int c) { return std::tolower(c); }));
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    if (!err.ok()) return false;
    auto c = CompareValues(key(a), key(b));
    if (!c.ok()) {
      err = c.status();
      return false;
    }
    return reverse ? *c > 0 : *c < 0;
  });
  KV_RETURN_IF_ERROR(err);
  return Value::List(std::move(items));
}

bool FlagArg(const CallArgs& a, size_t index, const char* name, bool def) {
  const Value* v = Arg(a, index, name);
  return v ? v->Truthy() : def;
}

// select/reject/selectattr/rejectattr: the test name and its arguments start at `first`.
StatusOr<Value> SelectImpl(const Value& seq, const CallArgs& args, bool by_attr, bool keep, const std::string& what) {
  KV_ASSIGN_OR_RETURN(ValueList items, Iterate(seq, what));
  size_t first = 0;
  std::string attr;
  if (by_attr) {
    KV_ASSIGN_OR_RETURN(attr, StrArg(args, 0, "attribute", what));
    first = 1;
  }
  std::string test;
  CallArgs test_args;
  if (args.pos.size() > first) {
    if (!args.pos[first].is_string()) return Status::InvalidArgument(what + ": test name must be a string");
    test = args.pos[first].str();
    test_args.pos.assign(args.pos.begin() + static_cast<long>(first) + 1, args.pos.end());
  }
  ValueList out;
  for (const Value& item : items) {
    const Value subject = by_attr ? GetAttrPath(item, attr) : item;
    bool pass = subject.Truthy();
    if (!test.empty()) {
      KV_ASSIGN_OR_RETURN(pass, ApplyTest(test, subject, test_args));
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::List(std::move(out));
}

StatusOr<Value> Indent(const std::string& s, const CallArgs& args) {
  std::string pad = "    ";
  if (const Value* w = Arg(args, 0, "width")) {
    if (w->is_string()) {
      pad = w->str();
    } else if (w->is_int() && w->as_int() >= 0 && w->as_int() <= 1024) {
      pad.assign(static_cast<size_t>(w->as_int()), ' ');
    } else {
      return Status::InvalidArgument("indent: width must be a string or an int in [0, 1024]");
    }
  }
  const bool first = FlagArg(args, 1, "first", false);
  const bool blank = FlagArg(args, 2, "blank", false);
  std::string out;
  size_t start = 0;
  bool is_first = true;
  while (start <= s.size()) {
    const size_t nl = s.find('\n', start);
    const std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    const bool pad_it = (is_first ? first : true) && (blank || !line.empty());
    if (pad_it) out += pad;
    out += line;
    if (out.size() > kMaxStringBytes) return Status::ResourceExhausted("indent: result exceeds the string size limit");
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    is_first = false;
  }
  return Value::String(std::move(out));
}

}  // namespace

std::string StripChars(const std::string& s, const std::string* chars, bool left, bool right) {
  const auto units = Utf8Units(s);
  std::vector<std::string> set;
  if (chars) set = Utf8Units(*chars);
  const auto strip = [&](const std::string& u) {
    return chars ? std::find(set.begin(), set.end(), u) != set.end() : IsPySpace(u);
  };
  size_t a = 0, b = units.size();
  if (left) {
    while (a < b && strip(units[a])) ++a;
  }
  if (right) {
    while (b > a && strip(units[b - 1])) --b;
  }
  return Join(units, a, b);
}

StatusOr<int> CompareValues(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    const double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.list();
    const auto& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      KV_ASSIGN_OR_RETURN(int c, CompareValues(x[i], y[i]));
      if (c != 0) return c;
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  return Status::InvalidArgument("'<' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, const CallArgs& args) {
  const std::string what = "filter '" + name + "'";
  const auto need_string = [&]() -> Status {
    if (!v.is_string()) return Status::InvalidArgument(what + " expects a string, got " + v.TypeName());
    return Status::Ok();
  };
  if (name == "trim") {
    KV_RETURN_IF_ERROR(CheckArity(args, 1, what));
    KV_ASSIGN_OR_RETURN(std::string s, v.ToString());
    const Value* chars = Arg(args, 0, "chars");
    if (chars && !chars->is_none() && !chars->is_string()) return Status::InvalidArgument(what + ": chars must be a string");
    return Value::String(StripChars(s, chars && chars->is_string() ? &chars->str() : nullptr, true, true));
  }
  if (name == "length" || name == "count") {
    KV_ASSIGN_OR_RETURN(int64_t n, Length(v, what));
    return Value::Int(n);
  }
  if (name == "tojson") {
    const Value* indent = Arg(args, 0, "indent");
    int ind = -1;
    if (indent && !indent->is_none()) {
      if (!indent->is_int() || indent->as_int() < 0 || indent->as_int() > 64) {
        return Status::InvalidArgument(what + ": indent must be an int in [0, 64]");
      }
      ind = static_cast<int>(indent->as_int());
    }
    KV_ASSIGN_OR_RETURN(std::string s, v.ToJson(ind));
    return Value::String(std::move(s));
  }
  if (name == "string" || name == "safe") {
    KV_ASSIGN_OR_RETURN(std::string s, v.ToString());
    return name == "safe" && !v.is_string() ? v : Value::String(std::move(s));
  }
  if (name == "lower" || name == "upper" || name == "capitalize" || name == "title") {
    KV_ASSIGN_OR_RETURN(std::string s, v.ToString());
    if (name == "lower") return Value::String(AsciiMap(s, [](int c) { return std::tolower(c); }));
    if (name == "upper") return Value::String(AsciiMap(s, [](int c) { return std::toupper(c); }));
    if (name == "capitalize") return Value::String(Capitalize(s));
    return Value::String(Title(s));
  }
  if (name == "escape" || name == "e") {
    KV_ASSIGN_OR_RETURN(std::string s, v.ToString());
    return Value::String(HtmlEscape(s));
  }
  if (name == "default" || name == "d") {
    const Value* def = Arg(args, 0, "default_value");
    const bool boolean = FlagArg(args, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.Truthy())) return def ? *def : Value::String("");
    return v;
  }
  if (name == "items" || name == "dictsort") {
    if (v.is_undefined()) return Value::List({});
    if (!v.is_mapping()) return Status::InvalidArgument(what + " expects a mapping, got " + v.TypeName());
    ValueList out;
    for (const auto& [k, e] : v.dict()) out.push_back(Value::Tuple({Value::String(k), e}));
    if (name == "dictsort") return SortValues(std::move(out), FlagArg(args, 2, "reverse", false), nullptr, FlagArg(args, 0, "case_sensitive", false));
    return Value::List(std::move(out));
  }
  if (name == "join") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    std::string sep;
    if (const Value* s = Arg(args, 0, "d")) {
      KV_ASSIGN_OR_RETURN(sep, s->ToString());
    }
    const Value* attr = Arg(args, 1, "attribute");
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += sep;
      const Value item = attr && attr->is_string() ? GetAttrPath(items[i], attr->str()) : items[i];
      KV_ASSIGN_OR_RETURN(std::string s, item.ToString());
      out += s;
      if (out.size() > kMaxStringBytes) return Status::ResourceExhausted(what + ": result exceeds the string size limit");
    }
    return Value::String(std::move(out));
  }
  if (name == "first" || name == "last") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    if (items.empty()) return Value::Undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "replace") {
    KV_ASSIGN_OR_RETURN(std::string s, v.ToString());
    KV_ASSIGN_OR_RETURN(std::string from, StrArg(args, 0, "old", what));
    KV_ASSIGN_OR_RETURN(std::string to, StrArg(args, 1, "new", what));
    const Value* count = Arg(args, 2, "count");
    KV_ASSIGN_OR_RETURN(std::string r, Replace(s, from, to, count && count->is_int() ? count->as_int() : -1));
    return Value::String(std::move(r));
  }
  if (name == "list") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    return Value::List(std::move(items));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto units = Utf8Units(v.str());
      std::reverse(units.begin(), units.end());
      return Value::String(Join(units, 0, units.size()));
    }
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "sort") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    const Value* attr = Arg(args, 2, "attribute");
    return SortValues(std::move(items), FlagArg(args, 0, "reverse", false), attr && attr->is_string() ? &attr->str() : nullptr,
                      FlagArg(args, 1, "case_sensitive", false));
  }
  if (name == "unique") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    ValueList out;
    for (const Value& e : items) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.Equals(e); })) out.push_back(e);
    }
    return Value::List(std::move(out));
  }
  if (name == "int") return ToInt(v, Arg(args, 0, "default"));
  if (name == "float") return ToFloat(v, Arg(args, 0, "default"));
  if (name == "abs") {
    if (v.is_int() || v.is_bool()) {
      if (v.as_int() == INT64_MIN) return Status::OutOfRange(what + ": integer overflow");
      return Value::Int(std::llabs(v.as_int()));
    }
    if (v.is_float()) return Value::Float(std::fabs(v.as_double()));
    return Status::InvalidArgument(what + ": bad operand type " + v.TypeName());
  }
  if (name == "round") {
    if (!v.is_number()) return Status::InvalidArgument(what + " expects a number, got " + v.TypeName());
    const Value* prec = Arg(args, 0, "precision");
    const int64_t p = prec && prec->is_int() ? std::clamp<int64_t>(prec->as_int(), 0, 15) : 0;
    const Value* method = Arg(args, 1, "method");
    const std::string m = method && method->is_string() ? method->str() : "common";
    const double scale = std::pow(10.0, static_cast<double>(p));
    const double x = v.as_double() * scale;
    const double r = m == "floor" ? std::floor(x) : m == "ceil" ? std::ceil(x) : std::nearbyint(x);  // Python rounds half to even
    return Value::Float(r / scale);
  }
  if (name == "sum") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    const Value* attr = Arg(args, 0, "attribute");
    const Value* start = Arg(args, 1, "start");
    bool is_float = start && start->is_float();
    int64_t isum = start && start->is_number() ? start->as_int() : 0;
    double fsum = start && start->is_number() ? start->as_double() : 0;
    for (const Value& e : items) {
      const Value x = attr && attr->is_string() ? GetAttrPath(e, attr->str()) : e;
      if (!x.is_number()) return Status::InvalidArgument(what + ": cannot add " + x.TypeName());
      is_float = is_float || x.is_float();
      if (__builtin_add_overflow(isum, x.as_int(), &isum)) return Status::OutOfRange(what + ": integer overflow");
      fsum += x.as_double();
    }
    return is_float ? Value::Float(fsum) : Value::Int(isum);
  }
  if (name == "min" || name == "max") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (size_t i = 1; i < items.size(); ++i) {
      KV_ASSIGN_OR_RETURN(int c, CompareValues(items[i], best));
      if (name == "min" ? c < 0 : c > 0) best = items[i];
    }
    return best;
  }
  if (name == "map") {
    KV_ASSIGN_OR_RETURN(ValueList items, Iterate(v, what));
    ValueList out;
    if (const Value* attr = Arg(args, 99, "attribute")) {
      if (!attr->is_string()) return Status::InvalidArgument(what + ": attribute must be a string");
      const Value* def = Arg(args, 99, "default");
      for (const Value& e : items) {
        Value x = GetAttrPath(e, attr->str());
        out.push_back(x.is_undefined() && def ? *def : x);
      }
      return Value::List(std::move(out));
    }
    if (args.pos.empty() || !args.pos[0].is_string()) return Status::InvalidArgument(what + ": expects a filter name or attribute=");
    CallArgs rest;
    rest.pos.assign(args.pos.begin() + 1, args.pos.end());
    rest.kw = args.kw;
    for (const Value& e : items) {
      KV_ASSIGN_OR_RETURN(Value x, ApplyFilter(args.pos[0].str(), e, rest));
      out.push_back(std::move(x));
    }
    return Value::List(std::move(out));
  }
  if (name == "select") return SelectImpl(v, args, false, true, what);
  if (name == "reject") return SelectImpl(v, args, false, false, what);
  if (name == "selectattr") return SelectImpl(v, args, true, true, what);
  if (name == "rejectattr") return SelectImpl(v, args, true, false, what);
  if (name == "indent") {
    KV_RETURN_IF_ERROR(need_string());
    return Indent(v.str(), args);
  }
  if (name == "wordcount") {
    KV_RETURN_IF_ERROR(need_string());
    return Value::Int(static_cast<int64_t>(SplitString(v.str(), nullptr, -1).list().size()));
  }
  if (name == "center") {
    KV_RETURN_IF_ERROR(need_string());
    return v;
  }
  return Status::InvalidArgument("unknown filter '" + name + "'");
}

StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const CallArgs& args) {
  const std::string what = "test '" + name + "'";
  const Value* other = Arg(args, 0, "other");
  const auto need_other = [&]() -> Status {
    if (other == nullptr) return Status::InvalidArgument(what + " needs an argument");
    return Status::Ok();
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_int() || v.is_float();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "mapping") return v.is_mapping();
  if (name == "sequence") return v.is_list() || v.is_string() || v.is_mapping();
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_mapping();
  if (name == "callable") return v.is_callable();
  if (name == "lower") return v.is_string() && AsciiMap(v.str(), [](int c) { return std::tolower(c); }) == v.str();
  if (name == "upper") return v.is_string() && AsciiMap(v.str(), [](int c) { return std::toupper(c); }) == v.str();
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) return Status::InvalidArgument(what + " expects an int, got " + v.TypeName());
    if (name == "odd") return v.as_int() % 2 != 0;
    if (name == "even") return v.as_int() % 2 == 0;
    const Value* num = Arg(args, 0, "num");
    if (num == nullptr || !num->is_int() || num->as_int() == 0) return Status::InvalidArgument(what + " needs a non-zero int");
    if (num->as_int() == -1) return true;
    return v.as_int() % num->as_int() == 0;
  }
  if (name == "sameas") {
    KV_RETURN_IF_ERROR(need_other());
    if (v.kind() != other->kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == other->as_bool();
    return v.Equals(*other);  // identity is approximated by equality
  }
  if (name == "eq" || name == "equalto" || name == "==") {
    KV_RETURN_IF_ERROR(need_other());
    return v.Equals(*other);
  }
  if (name == "ne" || name == "!=") {
    KV_RETURN_IF_ERROR(need_other());
    return !v.Equals(*other);
  }
  if (name == "lt" || name == "lessthan" || name == "<" || name == "le" || name == "<=" || name == "gt" ||
      name == "greaterthan" || name == ">" || name == "ge" || name == ">=") {
    KV_RETURN_IF_ERROR(need_other());
    KV_ASSIGN_OR_RETURN(int c, CompareValues(v, *other));
    if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
    if (name == "le" || name == "<=") return c <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
    return c >= 0;
  }
  if (name == "in") {
    const Value* seq = Arg(args, 0, "seq");
    if (seq == nullptr) return Status::InvalidArgument(what + " needs an argument");
    if (seq->is_string() && v.is_string()) return seq->str().find(v.str()) != std::string::npos;
    if (seq->is_list()) {
      return std::any_of(seq->list().begin(), seq->list().end(), [&](const Value& e) { return e.Equals(v); });
    }
    if (seq->is_mapping()) return v.is_string() && seq->Find(v.str()) != nullptr;
    return Status::InvalidArgument(what + ": argument is not a container");
  }
  return Status::InvalidArgument("unknown test '" + name + "'");
}

StatusOr<Value> CallMethod(const Value& obj, const std::string& name, const CallArgs& args, bool* found) {
  *found = true;
  const std::string what = obj.TypeName() + "." + name + "()";
  if (obj.is_string()) {
    const std::string& s = obj.str();
    if (name == "startswith" || name == "endswith") {
      const Value* p = Arg(args, 0, "prefix");
      if (p == nullptr) return Status::InvalidArgument(what + " takes exactly one argument");
      std::vector<std::string> options;
      if (p->is_string()) {
        options.push_back(p->str());
      } else if (p->is_list()) {
        for (const Value& e : p->list()) {
          if (!e.is_string()) return Status::InvalidArgument(what + ": tuple items must be strings");
          options.push_back(e.str());
        }
      } else {
        return Status::InvalidArgument(what + ": argument must be str or a tuple of str, not " + p->TypeName());
      }
      for (const auto& o : options) {
        if (name == "startswith" ? s.compare(0, o.size(), o) == 0 && s.size() >= o.size()
                                 : s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0) {
          return Value::Bool(true);
        }
      }
      return Value::Bool(false);
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      KV_RETURN_IF_ERROR(CheckArity(args, 1, what));
      const Value* chars = Arg(args, 0, "chars");
      if (chars && !chars->is_none() && !chars->is_string()) return Status::InvalidArgument(what + ": chars must be a string");
      const std::string* c = chars && chars->is_string() ? &chars->str() : nullptr;
      return Value::String(StripChars(s, c, name != "rstrip", name != "lstrip"));
    }
    if (name == "split") {
      const Value* sep = Arg(args, 0, "sep");
      const Value* maxsplit = Arg(args, 1, "maxsplit");
      if (sep && !sep->is_none() && !sep->is_string()) return Status::InvalidArgument(what + ": sep must be a string or None");
      if (sep && sep->is_string() && sep->str().empty()) return Status::InvalidArgument(what + ": empty separator");
      return SplitString(s, sep && sep->is_string() ? &sep->str() : nullptr,
                         maxsplit && maxsplit->is_int() ? maxsplit->as_int() : -1);
    }
    if (name == "lower") return Value::String(AsciiMap(s, [](int c) { return std::tolower(c); }));
    if (name == "upper") return Value::String(AsciiMap(s, [](int c) { return std::toupper(c); }));
    if (name == "capitalize") return Value::String(Capitalize(s));
    if (name == "title") return Value::String(Title(s));
    if (name == "replace") {
      KV_ASSIGN_OR_RETURN(std::string from, StrArg(args, 0, "old", what));
      KV_ASSIGN_OR_RETURN(std::string to, StrArg(args, 1, "new", what));
      const Value* count = Arg(args, 2, "count");
      KV_ASSIGN_OR_RETURN(std::string r, Replace(s, from, to, count && count->is_int() ? count->as_int() : -1));
      return Value::String(std::move(r));
    }
    if (name == "find" || name == "count") {
      KV_ASSIGN_OR_RETURN(std::string sub, StrArg(args, 0, "sub", what));
      if (name == "find") {
        const size_t f = s.find(sub);
        if (f == std::string::npos) return Value::Int(-1);
        return Value::Int(static_cast<int64_t>(Utf8Units(s.substr(0, f)).size()));
      }
      if (sub.empty()) return Value::Int(static_cast<int64_t>(Utf8Units(s).size()) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    if (name == "join") {
      const Value* seq = Arg(args, 0, "iterable");
      if (seq == nullptr) return Status::InvalidArgument(what + " takes exactly one argument");
      KV_ASSIGN_OR_RETURN(ValueList items, Iterate(*seq, what));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string()) return Status::InvalidArgument(what + ": sequence item " + std::to_string(i) + ": expected str instance, " + items[i].TypeName() + " found");
        if (i) out += s;
        out += items[i].str();
        if (out.size() > kMaxStringBytes) return Status::ResourceExhausted(what + ": result exceeds the string size limit");
      }
      return Value::String(std::move(out));
    }
    if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum") {
      if (s.empty()) return Value::Bool(false);
      for (unsigned char c : s) {
        const bool ok = name == "isdigit" ? std::isdigit(c) : name == "isspace" ? std::isspace(c) : name == "isalpha" ? std::isalpha(c) : std::isalnum(c);
        if (!ok) return Value::Bool(false);
      }
      return Value::Bool(true);
    }
  } else if (obj.is_mapping()) {
    if (name == "items" || name == "keys" || name == "values") {
      KV_RETURN_IF_ERROR(CheckArity(args, 0, what));
      ValueList out;
      for (const auto& [k, e] : obj.dict()) {
        if (name == "items") {
          out.push_back(Value::Tuple({Value::String(k), e}));
        } else {
          out.push_back(name == "keys" ? Value::String(k) : e);
        }
      }
      return Value::List(std::move(out));
    }
    if (name == "get") {
      const Value* key = Arg(args, 0, "key");
      if (key == nullptr) return Status::InvalidArgument(what + " needs a key");
      const Value* def = Arg(args, 1, "default");
      const Value* f = key->is_string() ? obj.Find(key->str()) : nullptr;
      return f ? *f : def ? *def : Value::None();
    }
  }
  *found = false;
  return Value();
}

bool IsGlobalFunction(const std::string& name) {
  return name == "namespace" || name == "range" || name == "dict" || name == "strftime_now" || name == "raise_exception";
}

StatusOr<Value> CallGlobal(const std::string& name, const CallArgs& args) {
  if (name == "raise_exception") {
    std::string msg;
    if (!args.pos.empty()) {
      KV_ASSIGN_OR_RETURN(msg, args.pos[0].ToString());
    }
    return Status::InvalidArgument("raise_exception: " + msg);
  }
  if (name == "namespace" || name == "dict") {
    ValueDict items;
    const auto put = [&](const std::string& k, const Value& v) {
      for (auto& kv : items) {
        if (kv.first == k) {
          kv.second = v;
          return;
        }
      }
      items.emplace_back(k, v);
    };
    for (const Value& p : args.pos) {
      if (!p.is_mapping()) return Status::InvalidArgument(name + "(): positional arguments must be mappings");
      for (const auto& [k, v] : p.dict()) put(k, v);
    }
    for (const auto& [k, v] : args.kw) put(k, v);
    return name == "namespace" ? Value::Namespace(std::move(items)) : Value::Dict(std::move(items));
  }
  if (name == "range") {
    if (args.pos.empty() || args.pos.size() > 3) return Status::InvalidArgument("range() takes 1 to 3 int arguments");
    for (const Value& p : args.pos) {
      if (!p.is_int() && !p.is_bool()) return Status::InvalidArgument("range(): arguments must be ints, got " + p.TypeName());
    }
    int64_t start = 0, stop, step = 1;
    if (args.pos.size() == 1) {
      stop = args.pos[0].as_int();
    } else {
      start = args.pos[0].as_int();
      stop = args.pos[1].as_int();
      if (args.pos.size() == 3) step = args.pos[2].as_int();
    }
    if (step == 0) return Status::InvalidArgument("range(): step must not be zero");
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() >= kMaxListItems) return Status::ResourceExhausted("range(): more than " + std::to_string(kMaxListItems) + " items");
      out.push_back(Value::Int(i));
      if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
    }
    return Value::List(std::move(out));
  }
  if (name == "strftime_now") {
    KV_ASSIGN_OR_RETURN(std::string fmt, StrArg(args, 0, "format", "strftime_now()"));
    if (fmt.size() > 256) return Status::InvalidArgument("strftime_now(): format longer than 256 bytes");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[1024];
    const size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
    return Value::String(std::string(buf, n));
  }
  return Status::InvalidArgument("unknown function '" + name + "'");
}

}  // namespace kvserve::chat
