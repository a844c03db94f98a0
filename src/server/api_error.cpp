#include "server/api_error.h"

namespace kvserve::server {

nlohmann::json ApiError::ToJson() const {
  nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

ApiError BadRequest(std::string message, std::string param) {
  ApiError e;
  e.http_status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

ApiError Unauthorized() {
  ApiError e;
  e.http_status = 401;
  e.type = "authentication_error";
  e.message = "Incorrect or missing API key (send 'Authorization: Bearer <key>')";
  e.code = "invalid_api_key";
  return e;
}

ApiError NotFound(std::string message, std::string code) {
  ApiError e;
  e.http_status = 404;
  e.type = "not_found_error";
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

ApiError Overloaded(std::string message, int retry_after_s) {
  ApiError e;
  e.http_status = 429;
  e.type = "rate_limit_error";
  e.message = std::move(message);
  e.code = "queue_full";
  e.retry_after_s = retry_after_s;
  return e;
}

ApiError Unavailable(std::string message, int retry_after_s) {
  ApiError e;
  e.http_status = 503;
  e.type = "service_unavailable";
  e.message = std::move(message);
  e.retry_after_s = retry_after_s;
  return e;
}

ApiError InternalError(std::string message) {
  ApiError e;
  e.http_status = 500;
  e.type = "server_error";
  e.message = std::move(message);
  return e;
}

ApiError FromStatus(const Status& s, int retry_after_s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
    case Status::Code::kOutOfRange:
      return BadRequest(s.message());
    case Status::Code::kResourceExhausted:
      return Overloaded(s.message(), retry_after_s);
    default:
      return InternalError(s.ToString());
  }
}

}  // namespace kvserve::server
