#include "chat/template_renderer.h"

#include <cmath>
#include <unordered_map>

#include "chat/template_builtins.h"

namespace kvserve::chat {
namespace {

Status At(const SourcePos& p, const Status& st) {
  const std::string msg = "chat template " + std::to_string(p.line) + ":" + std::to_string(p.col) + ": " + st.message();
  switch (st.code()) {
    case Status::Code::kResourceExhausted: return Status::ResourceExhausted(msg);
    case Status::Code::kOutOfRange: return Status::OutOfRange(msg);
    default: return Status::InvalidArgument(msg);
  }
}
Status At(const SourcePos& p, const std::string& msg) { return At(p, Status::InvalidArgument(msg)); }

std::string UndefinedMessage(const Value& v, const std::string& fallback) {
  const std::string r = v.undefined_reason();
  return r.empty() ? fallback : r;
}

bool ContainsNamespace(const Value& v) {
  if (v.kind() == Value::Kind::kNamespace) return true;
  if (v.is_list()) {
    for (const Value& e : v.list()) {
      if (ContainsNamespace(e)) return true;
    }
  } else if (v.is_mapping()) {
    for (const auto& kv : v.dict()) {
      if (ContainsNamespace(kv.second)) return true;
    }
  }
  return false;
}

StatusOr<int64_t> FloorDiv(int64_t a, int64_t b) {
  if (b == 0) return Status::InvalidArgument("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) return Status::OutOfRange("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

StatusOr<Value> Arith(const std::string& op, const Value& a, const Value& b) {
  const auto type_error = [&]() {
    if (a.is_undefined()) return Status::InvalidArgument(UndefinedMessage(a, "operand is undefined"));
    if (b.is_undefined()) return Status::InvalidArgument(UndefinedMessage(b, "operand is undefined"));
    return Status::InvalidArgument("unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" + b.TypeName() + "'");
  };
  if (op == "~") {
    KV_ASSIGN_OR_RETURN(std::string x, a.ToString());
    KV_ASSIGN_OR_RETURN(std::string y, b.ToString());
    if (x.size() + y.size() > kMaxStringBytes) return Status::ResourceExhausted("string exceeds the size limit");
    return Value::String(x + y);
  }
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) return Status::OutOfRange("integer overflow in +");
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      if (a.str().size() + b.str().size() > kMaxStringBytes) return Status::ResourceExhausted("string exceeds the size limit");
      return Value::String(a.str() + b.str());
    }
    if (a.is_list() && b.is_list()) {
      if (a.list().size() + b.list().size() > kMaxListItems) return Status::ResourceExhausted("list exceeds the size limit");
      ValueList items = a.list();
      items.insert(items.end(), b.list().begin(), b.list().end());
      return Value::List(std::move(items));
    }
    return type_error();
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) return Status::OutOfRange("integer overflow in *");
      return Value::Int(r);
    }
    if (nums) return Value::Float(a.as_double() * b.as_double());
    const Value* seq = (a.is_string() || a.is_list()) ? &a : (b.is_string() || b.is_list()) ? &b : nullptr;
    const Value* n = seq == &a ? &b : &a;
    if (seq == nullptr || !(n->is_int() || n->is_bool())) return type_error();
    const int64_t times = std::max<int64_t>(0, n->as_int());
    if (seq->is_string()) {
      if (!seq->str().empty() && static_cast<uint64_t>(times) > kMaxStringBytes / seq->str().size()) {
        return Status::ResourceExhausted("string exceeds the size limit");
      }
      std::string out;
      for (int64_t i = 0; i < times && !seq->str().empty(); ++i) out += seq->str();
      return Value::String(std::move(out));
    }
    if (!seq->list().empty() && static_cast<uint64_t>(times) > kMaxListItems / seq->list().size()) {
      return Status::ResourceExhausted("list exceeds the size limit");
    }
    ValueList out;
    for (int64_t i = 0; i < times && !seq->list().empty(); ++i) out.insert(out.end(), seq->list().begin(), seq->list().end());
    return Value::List(std::move(out));
  }
  if (!nums) return type_error();
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) return Status::OutOfRange("integer overflow in -");
      return Value::Int(r);
    }
    return Value::Float(a.as_double() - b.as_double());
  }
  if (op == "/") {
    if (b.as_double() == 0) return Status::InvalidArgument("division by zero");
    return Value::Float(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (ints) {
      KV_ASSIGN_OR_RETURN(int64_t q, FloorDiv(a.as_int(), b.as_int()));
      if (op == "//") return Value::Int(q);
      return Value::Int(a.as_int() - q * b.as_int());
    }
    const double x = a.as_double(), y = b.as_double();
    if (y == 0) return Status::InvalidArgument("float division or modulo by zero");
    if (op == "//") return Value::Float(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::Float(m);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t r = 1, base = a.as_int(), e = b.as_int();
      while (e > 0) {
        if ((e & 1) && __builtin_mul_overflow(r, base, &r)) return Status::OutOfRange("integer overflow in **");
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) return Status::OutOfRange("integer overflow in **");
      }
      return Value::Int(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0) return Status::InvalidArgument("0.0 cannot be raised to a negative power");
    return Value::Float(std::pow(a.as_double(), b.as_double()));
  }
  return Status::InvalidArgument("unknown operator '" + op + "'");
}

// Python slice bounds for a sequence of length n.
std::vector<size_t> SliceIndices(int64_t n, const Value* start, const Value* stop, const Value* step_v) {
  const int64_t step = step_v ? step_v->as_int() : 1;
  const auto clamp = [&](const Value* v, int64_t def) {
    if (v == nullptr) return def;
    int64_t i = v->as_int();
    if (i < 0) i += n;
    if (step > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  std::vector<size_t> out;
  if (step > 0) {
    const int64_t a = clamp(start, 0), b = clamp(stop, n);
    for (int64_t i = a; i < b; i += step) out.push_back(static_cast<size_t>(i));
  } else {
    const int64_t a = clamp(start, n - 1), b = clamp(stop, -1);
    for (int64_t i = a; i > b; i += step) out.push_back(static_cast<size_t>(i));
  }
  return out;
}

class Renderer {
 public:
  Renderer(const Value& context, const RenderLimits& limits) : limits_(limits) {
    frames_.emplace_back();
    for (const auto& [k, v] : context.dict()) frames_[0][k] = v;
  }

  Status Run(const Body& body, std::string* out) {
    KV_RETURN_IF_ERROR(ExecBody(body, out));
    return Status::Ok();
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Frame = std::unordered_map<std::string, Value>;

  Status Step(const SourcePos& pos) {
    if (++steps_ > limits_.max_steps) {
      return At(pos, Status::ResourceExhausted("template exceeded " + std::to_string(limits_.max_steps) + " evaluation steps"));
    }
    return Status::Ok();
  }

  Status Emit(const SourcePos& pos, const std::string& s, std::string* out) {
    if (out->size() + s.size() > limits_.max_output_bytes) {
      return At(pos, Status::ResourceExhausted("output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes"));
    }
    *out += s;
    return Status::Ok();
  }

  Value Lookup(const std::string& name) const {
    for (size_t i = frames_.size(); i-- > floor_;) {
      auto it = frames_[i].find(name);
      if (it != frames_[i].end()) return it->second;
    }
    if (floor_ > 0) {
      auto it = frames_[0].find(name);
      if (it != frames_[0].end()) return it->second;
    }
    if (IsGlobalFunction(name)) return Value::Builtin(name);
    return Value::Undefined("'" + name + "' is undefined");
  }

  Status ExecBody(const Body& body, std::string* out) {
    for (const StmtPtr& s : body) {
      KV_RETURN_IF_ERROR(Exec(*s, out));
      if (flow_ != Flow::kNormal) break;
    }
    return Status::Ok();
  }

  Status Exec(const Stmt& s, std::string* out) {
    KV_RETURN_IF_ERROR(Step(s.pos));
    switch (s.kind) {
      case Stmt::Kind::kText: return Emit(s.pos, s.text, out);
      case Stmt::Kind::kOutput: {
        KV_ASSIGN_OR_RETURN(Value v, Eval(*s.expr));
        auto text = v.ToString();
        if (!text.ok()) return At(s.pos, text.status());
        return Emit(s.pos, *text, out);
      }
      case Stmt::Kind::kIf: {
        for (size_t i = 0; i < s.conds.size(); ++i) {
          KV_ASSIGN_OR_RETURN(Value c, Eval(*s.conds[i]));
          if (c.Truthy()) return ExecBody(s.bodies[i], out);
        }
        return ExecBody(s.else_body, out);
      }
      case Stmt::Kind::kFor: return ExecFor(s, out);
      case Stmt::Kind::kSet: return ExecSet(s);
      case Stmt::Kind::kMacro: frames_.back()[s.name] = Value::Macro(&s); return Status::Ok();
      case Stmt::Kind::kBreak: flow_ = Flow::kBreak; return Status::Ok();
      case Stmt::Kind::kContinue: flow_ = Flow::kContinue; return Status::Ok();
    }
    return Status::Ok();
  }

  Status Bind(const Stmt& s, const std::vector<std::string>& targets, const Value& v, Frame* frame) {
    if (targets.size() == 1) {
      (*frame)[targets[0]] = v;
      return Status::Ok();
    }
    if (!v.is_list()) return At(s.pos, "cannot unpack a " + v.TypeName() + " into " + std::to_string(targets.size()) + " variables");
    if (v.list().size() != targets.size()) {
      return At(s.pos, "expected " + std::to_string(targets.size()) + " values to unpack, got " + std::to_string(v.list().size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) (*frame)[targets[i]] = v.list()[i];
    return Status::Ok();
  }

  Status ExecFor(const Stmt& s, std::string* out) {
    KV_ASSIGN_OR_RETURN(Value seq, Eval(*s.expr));
    ValueList items;
    if (seq.is_list()) {
      if (!s.cond) return RunLoop(s, seq.list(), out);  // no copy of the sequence needed
      items = seq.list();
    } else if (seq.is_mapping()) {
      for (const auto& kv : seq.dict()) items.push_back(Value::String(kv.first));
    } else if (seq.is_string()) {
      for (auto& u : Utf8Units(seq.str())) items.push_back(Value::String(std::move(u)));
    } else if (!seq.is_undefined()) {
      return At(s.expr->pos, "'" + seq.TypeName() + "' object is not iterable");
    }
    if (s.cond) {
      ValueList kept;
      for (const Value& item : items) {
        frames_.emplace_back();
        Status st = Bind(s, s.targets, item, &frames_.back());
        StatusOr<Value> c = st.ok() ? Eval(*s.cond) : StatusOr<Value>(st);
        frames_.pop_back();
        if (!c.ok()) return c.status();
        if (c->Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    return RunLoop(s, items, out);
  }

  Status RunLoop(const Stmt& s, const ValueList& items, std::string* out) {
    if (items.empty()) return ExecBody(s.else_body, out);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      KV_RETURN_IF_ERROR(Step(s.pos));
      ValueDict loop = {
          {"index", Value::Int(i + 1)},        {"index0", Value::Int(i)},
          {"revindex", Value::Int(n - i)},     {"revindex0", Value::Int(n - i - 1)},
          {"first", Value::Bool(i == 0)},      {"last", Value::Bool(i == n - 1)},
          {"length", Value::Int(n)},           {"depth", Value::Int(1)},
          {"depth0", Value::Int(0)},
      };
      if (i > 0) loop.emplace_back("previtem", items[static_cast<size_t>(i - 1)]);
      if (i + 1 < n) loop.emplace_back("nextitem", items[static_cast<size_t>(i + 1)]);
      frames_.emplace_back();
      frames_.back()["loop"] = Value::Dict(std::move(loop));
      Status st = Bind(s, s.targets, items[static_cast<size_t>(i)], &frames_.back());
      if (st.ok()) st = ExecBody(s.bodies[0], out);
      frames_.pop_back();
      KV_RETURN_IF_ERROR(st);
      if (flow_ == Flow::kBreak) {
        flow_ = Flow::kNormal;
        break;
      }
      flow_ = Flow::kNormal;
    }
    return Status::Ok();
  }

  Status ExecSet(const Stmt& s) {
    Value v;
    if (s.expr) {
      KV_ASSIGN_OR_RETURN(v, Eval(*s.expr));
    } else {
      std::string text;
      KV_RETURN_IF_ERROR(ExecBody(s.bodies[0], &text));
      v = Value::String(std::move(text));
    }
    if (s.name.empty()) return Bind(s, s.targets, v, &frames_.back());
    const Value ns = Lookup(s.targets[0]);
    if (ns.kind() != Value::Kind::kNamespace) {
      return At(s.pos, "cannot assign attribute '" + s.name + "' on '" + s.targets[0] + "' (a " + ns.TypeName() +
                           ", not a namespace)");
    }
    // A namespace stored inside a namespace could form a reference cycle.
    if (ContainsNamespace(v)) return At(s.pos, "cannot store a namespace inside namespace '" + s.targets[0] + "'");
    ValueDict& d = ns.mutable_namespace();
    for (auto& kv : d) {
      if (kv.first == s.name) {
        kv.second = std::move(v);
        return Status::Ok();
      }
    }
    d.emplace_back(s.name, std::move(v));
    return Status::Ok();
  }

  StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.kids.size(); ++i) {
      KV_ASSIGN_OR_RETURN(Value v, Eval(*e.kids[i]));
      args.pos.push_back(std::move(v));
    }
    for (const auto& [k, ex] : e.kwargs) {
      KV_ASSIGN_OR_RETURN(Value v, Eval(*ex));
      args.kw.emplace_back(k, std::move(v));
    }
    return args;
  }

  StatusOr<Value> CallMacro(const Expr& e, const Stmt& m, const CallArgs& args) {
    if (call_depth_ >= limits_.max_call_depth) {
      return At(e.pos, Status::ResourceExhausted("macro calls nested deeper than " + std::to_string(limits_.max_call_depth)));
    }
    if (args.pos.size() > m.params.size()) {
      return At(e.pos, "macro '" + m.name + "' takes " + std::to_string(m.params.size()) + " argument(s), got " +
                           std::to_string(args.pos.size()));
    }
    Frame frame;
    for (size_t i = 0; i < args.pos.size(); ++i) frame[m.params[i].first] = args.pos[i];
    for (const auto& [k, v] : args.kw) {
      bool known = false;
      for (const auto& p : m.params) known = known || p.first == k;
      if (!known) return At(e.pos, "macro '" + m.name + "' has no parameter '" + k + "'");
      frame[k] = v;
    }
    const size_t saved_floor = floor_;
    const Flow saved_flow = flow_;
    frames_.push_back(std::move(frame));
    floor_ = frames_.size() - 1;
    ++call_depth_;
    Status st = Status::Ok();
    for (const auto& [name, def] : m.params) {
      if (frames_.back().count(name)) continue;
      if (def) {
        StatusOr<Value> d = Eval(*def);
        if (!d.ok()) {
          st = d.status();
          break;
        }
        frames_.back()[name] = *d;
      } else {
        frames_.back()[name] = Value::Undefined("'" + name + "' is undefined");
      }
    }
    std::string text;
    if (st.ok()) st = ExecBody(m.bodies[0], &text);
    --call_depth_;
    frames_.pop_back();
    floor_ = saved_floor;
    flow_ = saved_flow;
    KV_RETURN_IF_ERROR(st);
    return Value::String(std::move(text));
  }

  StatusOr<Value> Call(const Expr& e) {
    const Expr& callee = *e.kids[0];
    if (callee.kind == Expr::Kind::kGetAttr) {
      KV_ASSIGN_OR_RETURN(Value obj, Eval(*callee.kids[0]));
      if (obj.is_undefined()) return At(callee.pos, UndefinedMessage(obj, "value is undefined") + " (calling '" + callee.name + "')");
      KV_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
      bool found = false;
      auto r = CallMethod(obj, callee.name, args, &found);
      if (found) {
        if (!r.ok()) return At(e.pos, r.status());
        return r;
      }
      const Value* attr = obj.is_mapping() ? obj.Find(callee.name) : nullptr;
      if (attr && attr->kind() == Value::Kind::kMacro) return CallMacro(e, *attr->macro(), args);
      if (attr && attr->kind() == Value::Kind::kBuiltin) {
        auto g = CallGlobal(attr->str(), args);
        if (!g.ok()) return At(e.pos, g.status());
        return g;
      }
      return At(callee.pos, "'" + obj.TypeName() + "' object has no method '" + callee.name + "'");
    }
    KV_ASSIGN_OR_RETURN(Value fn, Eval(callee));
    KV_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
    if (fn.kind() == Value::Kind::kBuiltin) {
      auto r = CallGlobal(fn.str(), args);
      if (!r.ok()) return At(e.pos, r.status());
      return r;
    }
    if (fn.kind() == Value::Kind::kMacro) return CallMacro(e, *fn.macro(), args);
    if (fn.is_undefined()) return At(callee.pos, UndefinedMessage(fn, "callee is undefined"));
    return At(callee.pos, "'" + fn.TypeName() + "' object is not callable");
  }

  StatusOr<Value> Eval(const Expr& e) {
    KV_RETURN_IF_ERROR(Step(e.pos));
    KV_ASSIGN_OR_RETURN(Value v, EvalInner(e));
    if (v.depth() > kMaxValueDepth) return At(e.pos, Status::ResourceExhausted("value nested deeper than " + std::to_string(kMaxValueDepth)));
    if (v.is_string() && v.str().size() > kMaxStringBytes) return At(e.pos, Status::ResourceExhausted("string exceeds the size limit"));
    if (v.is_list() && v.list().size() > kMaxListItems) return At(e.pos, Status::ResourceExhausted("list exceeds the size limit"));
    return v;
  }

  StatusOr<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kGetAttr: {
        KV_ASSIGN_OR_RETURN(Value obj, Eval(*e.kids[0]));
        if (obj.is_undefined()) return At(e.pos, UndefinedMessage(obj, "value is undefined") + " (reading attribute '" + e.name + "')");
        if (obj.is_mapping()) {
          const Value* f = obj.Find(e.name);
          if (f) return *f;
        }
        return Value::Undefined("'" + obj.TypeName() + " object' has no attribute '" + e.name + "'");
      }
      case Expr::Kind::kGetItem: {
        KV_ASSIGN_OR_RETURN(Value obj, Eval(*e.kids[0]));
        KV_ASSIGN_OR_RETURN(Value key, Eval(*e.kids[1]));
        if (obj.is_undefined()) return At(e.pos, UndefinedMessage(obj, "value is undefined") + " (subscripting)");
        if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
          std::vector<std::string> units;
          if (obj.is_string()) units = Utf8Units(obj.str());
          const int64_t n = static_cast<int64_t>(obj.is_list() ? obj.list().size() : units.size());
          int64_t i = key.as_int();
          if (i < 0) i += n;
          if (i < 0 || i >= n) return Value::Undefined("index " + std::to_string(key.as_int()) + " out of range");
          if (obj.is_list()) return obj.list()[static_cast<size_t>(i)];
          return Value::String(units[static_cast<size_t>(i)]);
        }
        if (obj.is_mapping() && key.is_string()) {
          const Value* f = obj.Find(key.str());
          if (f) return *f;
          return Value::Undefined("'" + obj.TypeName() + " object' has no attribute '" + key.str() + "'");
        }
        return Value::Undefined("'" + obj.TypeName() + " object' has no item of that key");
      }
      case Expr::Kind::kSlice: {
        KV_ASSIGN_OR_RETURN(Value obj, Eval(*e.kids[0]));
        Value parts[3];
        for (int k = 0; k < 3; ++k) {
          if (!e.kids[1 + k]) continue;
          KV_ASSIGN_OR_RETURN(parts[k], Eval(*e.kids[1 + k]));
          if (parts[k].is_none()) {
            parts[k] = Value();
            continue;
          }
          if (!parts[k].is_int() && !parts[k].is_bool()) return At(e.kids[1 + k]->pos, "slice indices must be integers or None");
        }
        const Value* p[3];
        for (int k = 0; k < 3; ++k) p[k] = parts[k].is_undefined() ? nullptr : &parts[k];
        if (p[2] && p[2]->as_int() == 0) return At(e.pos, "slice step cannot be zero");
        if (p[2] && p[2]->as_int() == INT64_MIN) return At(e.pos, "slice step out of range");
        if (obj.is_list()) {
          ValueList out;
          for (size_t i : SliceIndices(static_cast<int64_t>(obj.list().size()), p[0], p[1], p[2])) out.push_back(obj.list()[i]);
          return Value::List(std::move(out));
        }
        if (obj.is_string()) {
          const auto units = Utf8Units(obj.str());
          std::string out;
          for (size_t i : SliceIndices(static_cast<int64_t>(units.size()), p[0], p[1], p[2])) out += units[i];
          return Value::String(std::move(out));
        }
        if (obj.is_undefined()) return At(e.pos, UndefinedMessage(obj, "value is undefined") + " (slicing)");
        return At(e.pos, "'" + obj.TypeName() + "' object is not subscriptable");
      }
      case Expr::Kind::kCall: return Call(e);
      case Expr::Kind::kFilter: {
        KV_ASSIGN_OR_RETURN(Value v, Eval(*e.kids[0]));
        KV_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        auto r = ApplyFilter(e.name, v, args);
        if (!r.ok()) return At(e.pos, r.status());
        return r;
      }
      case Expr::Kind::kTest: {
        KV_ASSIGN_OR_RETURN(Value v, Eval(*e.kids[0]));
        KV_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        auto r = ApplyTest(e.name, v, args);
        if (!r.ok()) return At(e.pos, r.status());
        return Value::Bool(*r != e.negated);
      }
      case Expr::Kind::kUnary: {
        KV_ASSIGN_OR_RETURN(Value v, Eval(*e.kids[0]));
        if (e.name == "not") return Value::Bool(!v.Truthy());
        if (!v.is_number()) return At(e.pos, "bad operand type for unary " + e.name + ": '" + v.TypeName() + "'");
        if (e.name == "+") return v.is_float() ? v : Value::Int(v.as_int());
        if (v.is_float()) return Value::Float(-v.as_double());
        if (v.as_int() == INT64_MIN) return At(e.pos, Status::OutOfRange("integer overflow in unary -"));
        return Value::Int(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        KV_ASSIGN_OR_RETURN(Value a, Eval(*e.kids[0]));
        if (e.name == "and") {
          if (!a.Truthy()) return a;
          return Eval(*e.kids[1]);
        }
        if (e.name == "or") {
          if (a.Truthy()) return a;
          return Eval(*e.kids[1]);
        }
        KV_ASSIGN_OR_RETURN(Value b, Eval(*e.kids[1]));
        auto r = Arith(e.name, a, b);
        if (!r.ok()) return At(e.pos, r.status());
        return r;
      }
      case Expr::Kind::kCompare: {
        KV_ASSIGN_OR_RETURN(Value left, Eval(*e.kids[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          KV_ASSIGN_OR_RETURN(Value right, Eval(*e.kids[i + 1]));
          KV_ASSIGN_OR_RETURN(bool ok, Compare(e, e.ops[i], left, right));
          if (!ok) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCond: {
        KV_ASSIGN_OR_RETURN(Value c, Eval(*e.kids[1]));
        if (c.Truthy()) return Eval(*e.kids[0]);
        if (e.kids[2]) return Eval(*e.kids[2]);
        return Value::Undefined("the inline if expression evaluated to false and no else section was defined");
      }
      case Expr::Kind::kList: {
        ValueList items;
        for (const ExprPtr& k : e.kids) {
          KV_ASSIGN_OR_RETURN(Value v, Eval(*k));
          items.push_back(std::move(v));
        }
        return e.tuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
      }
      case Expr::Kind::kDict: {
        ValueDict items;
        for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
          KV_ASSIGN_OR_RETURN(Value k, Eval(*e.kids[i]));
          KV_ASSIGN_OR_RETURN(Value v, Eval(*e.kids[i + 1]));
          if (!k.is_string()) return At(e.kids[i]->pos, "dict keys must be strings, got " + k.TypeName());
          bool replaced = false;
          for (auto& kv : items) {
            if (kv.first == k.str()) {
              kv.second = v;
              replaced = true;
            }
          }
          if (!replaced) items.emplace_back(k.str(), std::move(v));
        }
        return Value::Dict(std::move(items));
      }
    }
    return At(e.pos, "internal: unknown expression");
  }

  StatusOr<bool> Compare(const Expr& e, const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return a.Equals(b);
    if (op == "!=") return !a.Equals(b);
    if (op == "in" || op == "notin") {
      bool found;
      if (b.is_string()) {
        if (!a.is_string()) return At(e.pos, "'in <string>' requires string as left operand, not " + a.TypeName());
        found = b.str().find(a.str()) != std::string::npos;
      } else if (b.is_list()) {
        found = std::any_of(b.list().begin(), b.list().end(), [&](const Value& x) { return x.Equals(a); });
      } else if (b.is_mapping()) {
        found = a.is_string() && b.Find(a.str()) != nullptr;
      } else if (b.is_undefined()) {
        return At(e.pos, UndefinedMessage(b, "right operand of 'in' is undefined"));
      } else {
        return At(e.pos, "argument of type '" + b.TypeName() + "' is not iterable");
      }
      return op == "in" ? found : !found;
    }
    auto c = CompareValues(a, b);
    if (!c.ok()) {
      if (a.is_undefined() || b.is_undefined()) return At(e.pos, UndefinedMessage(a.is_undefined() ? a : b, "operand is undefined"));
      return At(e.pos, c.status());
    }
    if (op == "<") return *c < 0;
    if (op == ">") return *c > 0;
    if (op == "<=") return *c <= 0;
    return *c >= 0;
  }

  const RenderLimits& limits_;
  std::vector<Frame> frames_;
  size_t floor_ = 0;  // lookups skip frames below this (a macro sees its own frame and the globals)
  Flow flow_ = Flow::kNormal;
  int64_t steps_ = 0;
  int call_depth_ = 0;
};

}  // namespace

StatusOr<std::string> RenderTemplate(const Body& body, const Value& context, const RenderLimits& limits) {
  KV_CHECK(context.is_mapping());
  Renderer r(context, limits);
  std::string out;
  KV_RETURN_IF_ERROR(r.Run(body, &out));
  return out;
}

}  // namespace kvserve::chat
