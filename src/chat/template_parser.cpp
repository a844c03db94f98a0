#include "chat/template_parser.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

namespace kvserve::chat {
namespace {

// Nesting bound for expressions and blocks, so hostile input cannot exhaust the stack.
constexpr int kMaxNesting = 200;

struct Token {
  enum class Kind { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Kind kind = Kind::kEof;
  std::string text;  // text, name, operator, or decoded string literal
  int64_t ival = 0;
  double fval = 0;
  size_t offset = 0;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  SourcePos PosOf(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return SourcePos{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  Status Error(size_t offset, const std::string& msg) const {
    const SourcePos p = PosOf(offset);
    return Status::InvalidArgument("chat template " + std::to_string(p.line) + ":" + std::to_string(p.col) + ": " + msg);
  }

  StatusOr<std::vector<Token>> Run() {
    std::vector<Token> out;
    size_t pos = 0;
    bool strip_next = false;   // after "-%}" / "-}}" / "-#}"
    bool trim_newline = false; // trim_blocks after "%}" / "#}"
    while (true) {
      size_t start = src_.find('{', pos);
      while (start != std::string::npos && start + 1 < src_.size() && src_[start + 1] != '{' && src_[start + 1] != '%' &&
             src_[start + 1] != '#') {
        start = src_.find('{', start + 1);
      }
      if (start != std::string::npos && start + 1 >= src_.size()) start = std::string::npos;
      size_t a = pos;
      size_t b = start == std::string::npos ? src_.size() : start;
      if (strip_next) {
        while (a < b && IsSpace(src_[a])) ++a;
      } else if (trim_newline) {
        if (a < b && src_[a] == '\n') {
          ++a;
        } else if (a + 1 < b && src_[a] == '\r' && src_[a + 1] == '\n') {
          a += 2;
        }
      }
      strip_next = trim_newline = false;
      char tag = 0, mod = 0;
      if (start != std::string::npos) {
        tag = src_[start + 1];
        mod = start + 2 < src_.size() ? src_[start + 2] : 0;
        if (mod == '-') {
          while (b > a && IsSpace(src_[b - 1])) --b;
        } else if ((tag == '%' || tag == '#') && mod != '+') {
          // lstrip_blocks: drop spaces/tabs between the line start and a block tag.
          size_t l = b;
          while (l > a && (src_[l - 1] == ' ' || src_[l - 1] == '\t')) --l;
          const bool at_line_start = (l > a && src_[l - 1] == '\n') || (l == a && (a == 0 || src_[a - 1] == '\n'));
          if (at_line_start) b = l;
        }
      }
      if (b > a) out.push_back(Token{Token::Kind::kText, src_.substr(a, b - a), 0, 0, a});
      if (start == std::string::npos) break;
      size_t p = start + 2;
      if (mod == '-' || mod == '+') ++p;
      if (tag == '#') {
        const size_t end = src_.find("#}", p);
        if (end == std::string::npos) return Error(start, "unterminated comment");
        if (end > p && src_[end - 1] == '-') {
          strip_next = true;
        } else {
          trim_newline = true;
        }
        pos = end + 2;
        continue;
      }
      const bool block = tag == '%';
      if (block && IsRawTag(p)) {
        KV_ASSIGN_OR_RETURN(pos, LexRaw(start, p, &out, &strip_next, &trim_newline));
        continue;
      }
      out.push_back(Token{block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", 0, 0, start});
      KV_ASSIGN_OR_RETURN(pos, LexTag(p, block, &out, &strip_next, &trim_newline));
    }
    out.push_back(Token{Token::Kind::kEof, "", 0, 0, src_.size()});
    return out;
  }

 private:
  // `{% raw %}` at p (just after "{%" and its modifier)?
  bool IsRawTag(size_t p) const {
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    if (p < src_.size() && src_[p] == '-') ++p;
    return src_.compare(p, 2, "%}") == 0;
  }

  // Emits the raw section's text verbatim; returns the offset after "{% endraw %}".
  StatusOr<size_t> LexRaw(size_t start, size_t p, std::vector<Token>* out, bool* strip_next, bool* trim_newline) {
    size_t body = src_.find("%}", p) + 2;
    const bool strip_open = src_[body - 3] == '-';
    size_t search = body;
    while (true) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) return Error(start, "missing endraw for raw block");
      size_t q = open + 2;
      const char mod = q < src_.size() ? src_[q] : 0;
      if (mod == '-' || mod == '+') ++q;
      while (q < src_.size() && IsSpace(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && IsSpace(src_[q])) ++q;
      bool strip_close = false;
      if (q < src_.size() && src_[q] == '-') {
        strip_close = true;
        ++q;
      }
      if (src_.compare(q, 2, "%}") != 0) return Error(open, "malformed endraw tag");
      size_t a = body, b = open;
      if (strip_open) {
        while (a < b && IsSpace(src_[a])) ++a;
      } else if (a < b && src_[a] == '\n') {
        ++a;
      }
      if (mod == '-') {
        while (b > a && IsSpace(src_[b - 1])) --b;
      }
      if (b > a) out->push_back(Token{Token::Kind::kText, src_.substr(a, b - a), 0, 0, a});
      *strip_next = strip_close;
      *trim_newline = !strip_close;
      return q + 2;
    }
  }

  StatusOr<size_t> LexTag(size_t p, bool block, std::vector<Token>* out, bool* strip_next, bool* trim_newline) {
    const char* close = block ? "%}" : "}}";
    int depth = 0;  // brackets, so that "}}" inside a dict literal is not the tag end
    while (true) {
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      if (p >= src_.size()) return Error(p, std::string("unexpected end of template, expected '") + close + "'");
      const char c = src_[p];
      if (depth == 0 && (c == '-' || c == '+') && src_.compare(p + 1, 2, close) == 0) {
        out->push_back(Token{block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", 0, 0, p});
        if (c == '-') {
          *strip_next = true;
        } else {
          *trim_newline = false;
        }
        return p + 3;
      }
      if (depth == 0 && src_.compare(p, 2, close) == 0) {
        out->push_back(Token{block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", 0, 0, p});
        *trim_newline = block;
        return p + 2;
      }
      if (IsNameStart(c)) {
        size_t e = p;
        while (e < src_.size() && (IsNameStart(src_[e]) || IsDigit(src_[e]))) ++e;
        out->push_back(Token{Token::Kind::kName, src_.substr(p, e - p), 0, 0, p});
        p = e;
        continue;
      }
      if (IsDigit(c)) {
        size_t e = p;
        while (e < src_.size() && (IsDigit(src_[e]) || src_[e] == '_')) ++e;
        bool is_float = false;
        if (e + 1 < src_.size() && src_[e] == '.' && IsDigit(src_[e + 1])) {
          is_float = true;
          ++e;
          while (e < src_.size() && IsDigit(src_[e])) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && IsDigit(src_[f])) {
            is_float = true;
            e = f;
            while (e < src_.size() && IsDigit(src_[e])) ++e;
          }
        }
        std::string digits;
        for (size_t i = p; i < e; ++i) {
          if (src_[i] != '_') digits += src_[i];
        }
        Token t{is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits, 0, 0, p};
        if (is_float) {
          t.fval = std::strtod(digits.c_str(), nullptr);
        } else {
          errno = 0;
          t.ival = std::strtoll(digits.c_str(), nullptr, 10);
          if (errno == ERANGE) return Error(p, "integer literal out of range: " + digits);
        }
        out->push_back(std::move(t));
        p = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        KV_ASSIGN_OR_RETURN(p, LexString(p, out));
        continue;
      }
      static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                                   "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
      bool matched = false;
      for (const char* op : kOps) {
        const size_t n = std::char_traits<char>::length(op);
        if (src_.compare(p, n, op) == 0) {
          if (op[0] == '(' || op[0] == '[' || op[0] == '{') ++depth;
          if ((op[0] == ')' || op[0] == ']' || op[0] == '}') && depth > 0) --depth;
          out->push_back(Token{Token::Kind::kOp, op, 0, 0, p});
          p += n;
          matched = true;
          break;
        }
      }
      if (!matched) return Error(p, std::string("unexpected character '") + c + "'");
    }
  }

  StatusOr<size_t> LexString(size_t p, std::vector<Token>* out) {
    const char q = src_[p];
    std::string s;
    size_t i = p + 1;
    while (true) {
      if (i >= src_.size()) return Error(p, "unterminated string literal");
      const char c = src_[i];
      if (c == q) break;
      if (c == '\\' && i + 1 < src_.size()) {
        const char e = src_[i + 1];
        i += 2;
        switch (e) {
          case 'n': s += '\n'; break;
          case 't': s += '\t'; break;
          case 'r': s += '\r'; break;
          case '\\': s += '\\'; break;
          case '\'': s += '\''; break;
          case '"': s += '"'; break;
          case '0': s += '\0'; break;
          case '\n': break;  // line continuation
          default:
            // Python keeps unknown escapes verbatim.
            s += '\\';
            s += e;
        }
        continue;
      }
      s += c;
      ++i;
    }
    out->push_back(Token{Token::Kind::kString, std::move(s), 0, 0, p});
    return i + 1;
  }

  const std::string& src_;
  std::vector<size_t> line_starts_;
};

class Parser {
 public:
  Parser(const Lexer& lexer, std::vector<Token> tokens) : lexer_(lexer), toks_(std::move(tokens)) {}

  StatusOr<Body> ParseAll() {
    Body body;
    std::string end;
    KV_RETURN_IF_ERROR(ParseBody({}, &body, &end));
    return body;
  }

 private:
  using TK = Token::Kind;

  const Token& Peek(size_t ahead = 0) const { return toks_[std::min(i_ + ahead, toks_.size() - 1)]; }
  const Token& Next() { return toks_[std::min(i_++, toks_.size() - 1)]; }
  bool IsOp(const char* op, size_t ahead = 0) const { return Peek(ahead).kind == TK::kOp && Peek(ahead).text == op; }
  bool IsName(const char* n, size_t ahead = 0) const { return Peek(ahead).kind == TK::kName && Peek(ahead).text == n; }
  SourcePos Pos() const { return lexer_.PosOf(Peek().offset); }

  Status Error(const std::string& msg) const { return lexer_.Error(Peek().offset, msg); }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TK::kText: return "text";
      case TK::kVarBegin: return "'{{'";
      case TK::kVarEnd: return "'}}'";
      case TK::kBlockBegin: return "'{%'";
      case TK::kBlockEnd: return "'%}'";
      case TK::kEof: return "end of template";
      case TK::kString: return "string literal";
      default: return "'" + t.text + "'";
    }
  }
  Status Expect(const char* op) {
    if (!IsOp(op)) return Error(std::string("expected '") + op + "', got " + Describe(Peek()));
    ++i_;
    return Status::Ok();
  }
  Status ExpectKind(TK kind, const char* what) {
    if (Peek().kind != kind) return Error(std::string("expected ") + what + ", got " + Describe(Peek()));
    ++i_;
    return Status::Ok();
  }
  StatusOr<std::string> ExpectName() {
    if (Peek().kind != TK::kName) return Error("expected a name, got " + Describe(Peek()));
    return Next().text;
  }

  // Parses statements until a block tag whose keyword is in `ends` (consumed, stored in
  // *end) or, when `ends` is empty, the end of input.
  Status ParseBody(std::initializer_list<const char*> ends, Body* body, std::string* end) {
    if (++nesting_ > kMaxNesting) return Error("blocks nested too deeply");
    while (true) {
      const Token& t = Peek();
      if (t.kind == TK::kEof) {
        if (ends.size() == 0) break;
        return Error(std::string("unexpected end of template, expected '") + *(ends.end() - 1) + "'");
      }
      if (t.kind == TK::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->pos = Pos();
        s->text = t.text;
        ++i_;
        body->push_back(std::move(s));
        continue;
      }
      if (t.kind == TK::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->pos = Pos();
        ++i_;
        KV_ASSIGN_OR_RETURN(s->expr, ParseExpr());
        KV_RETURN_IF_ERROR(ExpectKind(TK::kVarEnd, "'}}'"));
        body->push_back(std::move(s));
        continue;
      }
      if (t.kind != TK::kBlockBegin) return Error("unexpected " + Describe(t));
      if (Peek(1).kind != TK::kName) {
        ++i_;
        return Error("expected a statement keyword, got " + Describe(Peek()));
      }
      const std::string kw = Peek(1).text;
      for (const char* e : ends) {
        if (kw == e) {
          i_ += 2;
          *end = kw;
          --nesting_;
          return Status::Ok();
        }
      }
      ++i_;
      const SourcePos pos = Pos();
      ++i_;
      StmtPtr s;
      if (kw == "if") {
        KV_ASSIGN_OR_RETURN(s, ParseIf());
      } else if (kw == "for") {
        KV_ASSIGN_OR_RETURN(s, ParseFor());
      } else if (kw == "set") {
        KV_ASSIGN_OR_RETURN(s, ParseSet());
      } else if (kw == "macro") {
        KV_ASSIGN_OR_RETURN(s, ParseMacro());
      } else if (kw == "break" || kw == "continue") {
        if (loop_depth_ == 0) return lexer_.Error(toks_[i_ - 1].offset, "'" + kw + "' outside of a loop");
        s = std::make_unique<Stmt>();
        s->kind = kw == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
        KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
      } else if (kw == "generation") {
        // Hugging Face's AssistantTracker tag only marks spans; rendering is unchanged.
        KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
        std::string e;
        KV_RETURN_IF_ERROR(ParseBody({"endgeneration"}, body, &e));
        KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
        continue;
      } else {
        return lexer_.Error(toks_[i_ - 1].offset, "unknown or unexpected tag '" + kw + "'");
      }
      s->pos = pos;
      body->push_back(std::move(s));
    }
    --nesting_;
    return Status::Ok();
  }

  StatusOr<StmtPtr> ParseIf() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kIf;
    while (true) {
      KV_ASSIGN_OR_RETURN(ExprPtr cond, ParseExpr());
      KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
      Body body;
      std::string end;
      KV_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &body, &end));
      s->conds.push_back(std::move(cond));
      s->bodies.push_back(std::move(body));
      if (end == "elif") continue;
      if (end == "else") {
        KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
        KV_RETURN_IF_ERROR(ParseBody({"endif"}, &s->else_body, &end));
      }
      KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
      return s;
    }
  }

  StatusOr<StmtPtr> ParseFor() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kFor;
    const bool paren = IsOp("(");
    if (paren) ++i_;
    while (true) {
      KV_ASSIGN_OR_RETURN(std::string n, ExpectName());
      s->targets.push_back(n);
      if (!IsOp(",")) break;
      ++i_;
    }
    if (paren) KV_RETURN_IF_ERROR(Expect(")"));
    if (!IsName("in")) return Error("expected 'in' in for loop, got " + Describe(Peek()));
    ++i_;
    KV_ASSIGN_OR_RETURN(s->expr, ParseOr(/*allow_cond=*/false));
    if (IsName("if")) {
      ++i_;
      KV_ASSIGN_OR_RETURN(s->cond, ParseExpr());
    }
    if (IsName("recursive")) return Error("recursive loops are not supported");
    KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
    Body body;
    std::string end;
    ++loop_depth_;
    KV_RETURN_IF_ERROR(ParseBody({"else", "endfor"}, &body, &end));
    --loop_depth_;
    s->bodies.push_back(std::move(body));
    if (end == "else") {
      KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
      KV_RETURN_IF_ERROR(ParseBody({"endfor"}, &s->else_body, &end));
    }
    KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
    return s;
  }

  StatusOr<StmtPtr> ParseSet() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kSet;
    KV_ASSIGN_OR_RETURN(std::string first, ExpectName());
    s->targets.push_back(first);
    if (IsOp(".")) {
      ++i_;
      KV_ASSIGN_OR_RETURN(s->name, ExpectName());
    } else {
      while (IsOp(",")) {
        ++i_;
        KV_ASSIGN_OR_RETURN(std::string n, ExpectName());
        s->targets.push_back(n);
      }
    }
    if (Peek().kind == TK::kBlockEnd && s->targets.size() == 1 && s->name.empty()) {
      // Block assignment: {% set x %}...{% endset %}
      ++i_;
      Body body;
      std::string end;
      KV_RETURN_IF_ERROR(ParseBody({"endset"}, &body, &end));
      KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
      s->bodies.push_back(std::move(body));
      return s;
    }
    KV_RETURN_IF_ERROR(Expect("="));
    KV_ASSIGN_OR_RETURN(s->expr, ParseTupleOrExpr());
    KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
    return s;
  }

  StatusOr<StmtPtr> ParseMacro() {
    auto s = std::make_unique<Stmt>();
    s->kind = Stmt::Kind::kMacro;
    KV_ASSIGN_OR_RETURN(s->name, ExpectName());
    KV_RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      KV_ASSIGN_OR_RETURN(std::string p, ExpectName());
      ExprPtr def;
      if (IsOp("=")) {
        ++i_;
        KV_ASSIGN_OR_RETURN(def, ParseExpr());
      }
      s->params.emplace_back(p, std::move(def));
      if (!IsOp(",")) break;
      ++i_;
    }
    KV_RETURN_IF_ERROR(Expect(")"));
    KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
    Body body;
    std::string end;
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    KV_RETURN_IF_ERROR(ParseBody({"endmacro"}, &body, &end));
    loop_depth_ = saved_loops;
    if (Peek().kind == TK::kName) ++i_;  // {% endmacro name %}
    KV_RETURN_IF_ERROR(ExpectKind(TK::kBlockEnd, "'%}'"));
    s->bodies.push_back(std::move(body));
    return s;
  }

  ExprPtr Make(Expr::Kind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // `a, b` without brackets (set right-hand sides) is a tuple, represented as a list.
  StatusOr<ExprPtr> ParseTupleOrExpr() {
    const SourcePos pos = Pos();
    KV_ASSIGN_OR_RETURN(ExprPtr first, ParseExpr());
    if (!IsOp(",")) return first;
    ExprPtr list = Make(Expr::Kind::kList, pos);
    list->tuple = true;
    list->kids.push_back(std::move(first));
    while (IsOp(",")) {
      ++i_;
      KV_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
      list->kids.push_back(std::move(e));
    }
    return list;
  }

  struct DepthGuard {
    explicit DepthGuard(int* d) : d_(d) { ++*d_; }
    ~DepthGuard() { --*d_; }
    int* d_;
  };

  StatusOr<ExprPtr> ParseExpr() { return ParseOr(/*allow_cond=*/true); }

  StatusOr<ExprPtr> ParseOr(bool allow_cond) {
    DepthGuard g(&depth_);
    if (depth_ > kMaxNesting) return Error("expression nested too deeply");
    KV_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      const SourcePos pos = Pos();
      ++i_;
      KV_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      ExprPtr e = Make(Expr::Kind::kBinary, pos);
      e->name = "or";
      e->kids.push_back(std::move(left));
      e->kids.push_back(std::move(right));
      left = std::move(e);
    }
    if (allow_cond && IsName("if")) {
      const SourcePos pos = Pos();
      ++i_;
      KV_ASSIGN_OR_RETURN(ExprPtr cond, ParseOr(/*allow_cond=*/false));
      ExprPtr e = Make(Expr::Kind::kCond, pos);
      e->kids.push_back(std::move(left));
      e->kids.push_back(std::move(cond));
      if (IsName("else")) {
        ++i_;
        KV_ASSIGN_OR_RETURN(ExprPtr other, ParseOr(/*allow_cond=*/true));
        e->kids.push_back(std::move(other));
      } else {
        e->kids.push_back(nullptr);
      }
      return e;
    }
    return left;
  }

  StatusOr<ExprPtr> ParseAnd() {
    KV_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      const SourcePos pos = Pos();
      ++i_;
      KV_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      ExprPtr e = Make(Expr::Kind::kBinary, pos);
      e->name = "and";
      e->kids.push_back(std::move(left));
      e->kids.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      DepthGuard g(&depth_);
      if (depth_ > kMaxNesting) return Error("expression nested too deeply");
      const SourcePos pos = Pos();
      ++i_;
      KV_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      ExprPtr e = Make(Expr::Kind::kUnary, pos);
      e->name = "not";
      e->kids.push_back(std::move(operand));
      return e;
    }
    return ParseCompare();
  }

  StatusOr<ExprPtr> ParseCompare() {
    const SourcePos pos = Pos();
    KV_ASSIGN_OR_RETURN(ExprPtr first, ParseAdd());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Peek().kind == TK::kOp &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        ++i_;
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        i_ += 2;
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(Expr::Kind::kCompare, pos);
        cmp->kids.push_back(std::move(first));
      }
      KV_ASSIGN_OR_RETURN(ExprPtr rhs, ParseAdd());
      cmp->ops.push_back(op);
      cmp->kids.push_back(std::move(rhs));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  // Jinja's precedence: + - below ~ below * / // % below **.
  StatusOr<ExprPtr> ParseBinaryLevel(int level) {
    static const std::vector<std::vector<std::string>> kLevels = {{"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
    if (level == static_cast<int>(kLevels.size())) return ParseUnary();
    KV_ASSIGN_OR_RETURN(ExprPtr left, ParseBinaryLevel(level + 1));
    while (Peek().kind == TK::kOp &&
           std::find(kLevels[level].begin(), kLevels[level].end(), Peek().text) != kLevels[level].end()) {
      const SourcePos pos = Pos();
      const std::string op = Next().text;
      KV_ASSIGN_OR_RETURN(ExprPtr right, ParseBinaryLevel(level + 1));
      ExprPtr e = Make(Expr::Kind::kBinary, pos);
      e->name = op;
      e->kids.push_back(std::move(left));
      e->kids.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }
  StatusOr<ExprPtr> ParseAdd() { return ParseBinaryLevel(0); }

  // As in Jinja, `-x|f` is f(-x): the operand of a unary sign takes no filters itself.
  StatusOr<ExprPtr> ParseUnary(bool with_filters = true) {
    DepthGuard g(&depth_);
    if (depth_ > kMaxNesting) return Error("expression nested too deeply");
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      const SourcePos pos = Pos();
      const std::string op = Next().text;
      KV_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(/*with_filters=*/false));
      e = Make(Expr::Kind::kUnary, pos);
      e->name = op;
      e->kids.push_back(std::move(operand));
    } else {
      KV_ASSIGN_OR_RETURN(e, ParsePrimary());
      KV_ASSIGN_OR_RETURN(e, ParsePostfix(std::move(e)));
    }
    if (!with_filters) return e;
    return ParseFilters(std::move(e));
  }

  StatusOr<ExprPtr> ParsePrimary() {
    const Token& t = Peek();
    const SourcePos pos = Pos();
    switch (t.kind) {
      case TK::kString: {
        ExprPtr e = Make(Expr::Kind::kLiteral, pos);
        std::string s;
        while (Peek().kind == TK::kString) s += Next().text;  // adjacent literals concatenate
        e->literal = Value::String(std::move(s));
        return e;
      }
      case TK::kInt: {
        ExprPtr e = Make(Expr::Kind::kLiteral, pos);
        e->literal = Value::Int(Next().ival);
        return e;
      }
      case TK::kFloat: {
        ExprPtr e = Make(Expr::Kind::kLiteral, pos);
        e->literal = Value::Float(Next().fval);
        return e;
      }
      case TK::kName: {
        const std::string n = Next().text;
        ExprPtr e = Make(Expr::Kind::kLiteral, pos);
        if (n == "true" || n == "True") {
          e->literal = Value::Bool(true);
        } else if (n == "false" || n == "False") {
          e->literal = Value::Bool(false);
        } else if (n == "none" || n == "None") {
          e->literal = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = n;
        }
        return e;
      }
      case TK::kOp: {
        if (t.text == "(") {
          ++i_;
          if (IsOp(")")) {
            ++i_;
            ExprPtr e = Make(Expr::Kind::kList, pos);  // empty tuple
            e->tuple = true;
            return e;
          }
          KV_ASSIGN_OR_RETURN(ExprPtr inner, ParseExpr());
          if (IsOp(",")) {
            ExprPtr tuple = Make(Expr::Kind::kList, pos);
            tuple->tuple = true;
            tuple->kids.push_back(std::move(inner));
            while (IsOp(",")) {
              ++i_;
              if (IsOp(")")) break;
              KV_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
              tuple->kids.push_back(std::move(e));
            }
            inner = std::move(tuple);
          }
          KV_RETURN_IF_ERROR(Expect(")"));
          return inner;
        }
        if (t.text == "[") {
          ++i_;
          ExprPtr e = Make(Expr::Kind::kList, pos);
          while (!IsOp("]")) {
            KV_ASSIGN_OR_RETURN(ExprPtr item, ParseExpr());
            e->kids.push_back(std::move(item));
            if (!IsOp(",")) break;
            ++i_;
          }
          KV_RETURN_IF_ERROR(Expect("]"));
          return e;
        }
        if (t.text == "{") {
          ++i_;
          ExprPtr e = Make(Expr::Kind::kDict, pos);
          while (!IsOp("}")) {
            KV_ASSIGN_OR_RETURN(ExprPtr k, ParseExpr());
            KV_RETURN_IF_ERROR(Expect(":"));
            KV_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr());
            e->kids.push_back(std::move(k));
            e->kids.push_back(std::move(v));
            if (!IsOp(",")) break;
            ++i_;
          }
          KV_RETURN_IF_ERROR(Expect("}"));
          return e;
        }
        break;
      }
      default: break;
    }
    return Error("unexpected " + Describe(t) + " in expression");
  }

  Status ParseCallArgs(Expr* e) {
    // REQUIRES: the '(' was consumed.
    while (!IsOp(")")) {
      if (Peek().kind == TK::kName && IsOp("=", 1)) {
        const std::string k = Next().text;
        ++i_;
        KV_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr());
        e->kwargs.emplace_back(k, std::move(v));
      } else {
        if (!e->kwargs.empty()) return Error("positional argument follows keyword argument");
        KV_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr());
        e->kids.push_back(std::move(v));
      }
      if (!IsOp(",")) break;
      ++i_;
    }
    return Expect(")");
  }

  StatusOr<ExprPtr> ParsePostfix(ExprPtr e) {
    while (true) {
      const SourcePos pos = Pos();
      if (IsOp(".")) {
        ++i_;
        ExprPtr g = Make(Expr::Kind::kGetAttr, pos);
        if (Peek().kind == TK::kInt) {
          g->kind = Expr::Kind::kGetItem;
          g->kids.push_back(std::move(e));
          ExprPtr idx = Make(Expr::Kind::kLiteral, pos);
          idx->literal = Value::Int(Next().ival);
          g->kids.push_back(std::move(idx));
        } else {
          KV_ASSIGN_OR_RETURN(g->name, ExpectName());
          g->kids.push_back(std::move(e));
        }
        e = std::move(g);
      } else if (IsOp("[")) {
        ++i_;
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!IsOp(":") && !IsOp("]")) {
            KV_ASSIGN_OR_RETURN(parts[k], ParseExpr());
          }
          if (k < 2 && IsOp(":")) {
            ++i_;
            slice = true;
          } else {
            break;
          }
        }
        KV_RETURN_IF_ERROR(Expect("]"));
        ExprPtr g = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, pos);
        g->kids.push_back(std::move(e));
        if (slice) {
          for (auto& p : parts) g->kids.push_back(std::move(p));
        } else {
          if (!parts[0]) return lexer_.Error(toks_[i_ - 1].offset, "empty subscript");
          g->kids.push_back(std::move(parts[0]));
        }
        e = std::move(g);
      } else if (IsOp("(")) {
        ++i_;
        ExprPtr c = Make(Expr::Kind::kCall, e->pos);  // errors point at the callee
        c->kids.push_back(std::move(e));
        KV_RETURN_IF_ERROR(ParseCallArgs(c.get()));
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  StatusOr<ExprPtr> ParseFilters(ExprPtr e) {
    while (true) {
      const SourcePos pos = Pos();
      if (IsOp("|")) {
        ++i_;
        ExprPtr f = Make(Expr::Kind::kFilter, pos);
        KV_ASSIGN_OR_RETURN(f->name, ExpectName());
        while (IsOp(".")) {  // dotted filter names are not Jinja, but keep the error clear
          return Error("unexpected '.' after filter name");
        }
        f->kids.push_back(std::move(e));
        if (IsOp("(")) {
          ++i_;
          KV_RETURN_IF_ERROR(ParseCallArgs(f.get()));
        }
        e = std::move(f);
      } else if (IsName("is")) {
        ++i_;
        ExprPtr t = Make(Expr::Kind::kTest, pos);
        if (IsName("not")) {
          ++i_;
          t->negated = true;
        }
        if (Peek().kind != TK::kName) return Error("expected a test name after 'is', got " + Describe(Peek()));
        t->name = Next().text;
        t->kids.push_back(std::move(e));
        if (IsOp("(")) {
          ++i_;
          KV_RETURN_IF_ERROR(ParseCallArgs(t.get()));
        } else if (Peek().kind == TK::kString || Peek().kind == TK::kInt || Peek().kind == TK::kFloat ||
                   (Peek().kind == TK::kName && !IsName("and") && !IsName("or") && !IsName("else") &&
                    !IsName("if") && !IsName("in") && !IsName("not") && !IsName("is"))) {
          // `x is divisibleby 3`, `x is sameas none`: one bare argument.
          KV_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          KV_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
          t->kids.push_back(std::move(arg));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  const Lexer& lexer_;
  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

StatusOr<Body> ParseTemplate(const std::string& raw_source) {
  // Jinja normalises newlines to "\n" and drops one trailing newline
  // (keep_trailing_newline=False) before lexing.
  std::string source;
  source.reserve(raw_source.size());
  for (size_t i = 0; i < raw_source.size(); ++i) {
    if (raw_source[i] == '\r') {
      source += '\n';
      if (i + 1 < raw_source.size() && raw_source[i + 1] == '\n') ++i;
    } else {
      source += raw_source[i];
    }
  }
  if (!source.empty() && source.back() == '\n') source.pop_back();
  Lexer lexer(source);
  KV_ASSIGN_OR_RETURN(std::vector<Token> tokens, lexer.Run());
  Parser parser(lexer, std::move(tokens));
  return parser.ParseAll();
}

}  // namespace kvserve::chat
