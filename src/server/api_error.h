// Errors returned to HTTP clients in OpenAI's JSON shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace kvserve::server {

struct ApiError {
  int http_status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;  // the offending request field, empty when none
  std::string code;   // OpenAI's machine-readable code, empty when none
  int retry_after_s = 0;  // > 0: send a Retry-After header (429 / 503)

  nlohmann::json ToJson() const;
};

ApiError BadRequest(std::string message, std::string param = "");
ApiError Unauthorized();
ApiError NotFound(std::string message, std::string code = "");
ApiError Overloaded(std::string message, int retry_after_s);  // 429
ApiError Unavailable(std::string message, int retry_after_s);  // 503
ApiError InternalError(std::string message);

// Engine Status -> HTTP: InvalidArgument/OutOfRange 400, ResourceExhausted 429, others 500.
ApiError FromStatus(const Status& s, int retry_after_s);

}  // namespace kvserve::server
