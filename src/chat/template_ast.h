// Syntax tree of a parsed chat template (Jinja2 subset). Built by ParseTemplate,
// walked by the renderer; immutable after parsing.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace kvserve::chat {

struct SourcePos {
  int line = 1;
  int col = 1;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kGetAttr,    // kids[0].name
    kGetItem,    // kids[0][kids[1]]
    kSlice,      // kids[0][kids[1]:kids[2]:kids[3]] (absent parts are null)
    kCall,       // kids[0](kids[1..], kwargs)
    kFilter,     // kids[0] | name(kids[1..], kwargs)
    kTest,       // kids[0] is [not] name(kids[1..])
    kUnary,      // op kids[0]: "-", "+", "not"
    kBinary,     // kids[0] op kids[1]: + - * / // % ** ~ and or
    kCompare,    // kids[0] ops[0] kids[1] ops[1] kids[2] ... (== != < > <= >= in notin)
    kCond,       // kids[0] if kids[1] else kids[2] (kids[2] may be null)
    kList,       // [kids...]; `tuple` marks (a, b) and bare a, b
    kDict,       // {kids[0]: kids[1], ...}
  };
  Kind kind = Kind::kLiteral;
  SourcePos pos;
  Value literal;
  std::string name;              // name, attribute, filter or test name, operator
  std::vector<std::string> ops;  // comparison operators
  bool negated = false;          // `is not`
  bool tuple = false;            // kList written as a tuple
  std::vector<ExprPtr> kids;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // conds[i] -> bodies[i]; else_body
    kFor,       // for targets in expr [if cond]: bodies[0]; else_body
    kSet,       // set targets = expr | set targets[0].attr = expr | set name %}body{% endset
    kMacro,     // macro name(params) bodies[0]
    kBreak,
    kContinue,
  };
  Kind kind = Kind::kText;
  SourcePos pos;
  std::string text;
  std::string name;                  // macro name; attribute for `set ns.attr`
  std::vector<std::string> targets;  // loop / set variables
  ExprPtr expr;                      // output, loop iterable, set value
  ExprPtr cond;                      // loop filter
  std::vector<ExprPtr> conds;        // if / elif conditions
  std::vector<Body> bodies;          // if branches; loop / macro / block-set body in bodies[0]
  Body else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with defaults (may be null)
};

}  // namespace kvserve::chat
