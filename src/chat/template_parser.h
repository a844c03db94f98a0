// Parses Jinja2 template source the way Hugging Face's chat-template environment
// configures Jinja (trim_blocks=True, lstrip_blocks=True, loop controls on).
#pragma once

#include <string>

#include "chat/template_ast.h"
#include "util/status.h"

namespace kvserve::chat {

// Errors name the line and column: "chat template 3:14: unexpected 'endfor'".
StatusOr<Body> ParseTemplate(const std::string& source);

}  // namespace kvserve::chat
