// Walks a parsed template with Jinja2 semantics (Python values, scoping where loop
// bodies and macros get their own variables, namespace() for state across them).
#pragma once

#include <cstdint>
#include <string>

#include "chat/template_ast.h"
#include "chat/value.h"
#include "util/status.h"

namespace kvserve::chat {

struct RenderLimits {
  size_t max_output_bytes = size_t{16} << 20;
  int64_t max_steps = 1'000'000;  // statements, loop iterations and expression nodes
  int max_call_depth = 64;         // nested macro calls
};

// REQUIRES: context is a dict (its keys become template variables).
StatusOr<std::string> RenderTemplate(const Body& body, const Value& context, const RenderLimits& limits);

}  // namespace kvserve::chat
