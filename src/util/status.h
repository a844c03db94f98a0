// Status and StatusOr: error values for API paths (LevelDB style).
// "No capacity" outcomes are not errors and never use Status; broken
// invariants abort via KV_CHECK.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kvserve {

class Status {
 public:
  enum class Code { kOk = 0, kInvalidArgument, kNotFound, kCorrupt, kUnsupported, kIOError, kOutOfRange, kResourceExhausted, kInternal };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corrupt(std::string msg) { return Status(Code::kCorrupt, std::move(msg)); }
  static Status Unsupported(std::string msg) { return Status(Code::kUnsupported, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status OutOfRange(std::string msg) { return Status(Code::kOutOfRange, std::move(msg)); }
  static Status ResourceExhausted(std::string msg) { return Status(Code::kResourceExhausted, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Holds either a value or a non-OK Status.
template <typename T>
class StatusOr {
 public:
  StatusOr(const Status& s) : v_(s) {  // NOLINT: implicit by design
    if (s.ok()) { std::fprintf(stderr, "StatusOr constructed from OK status\n"); std::abort(); }
  }
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, const std::string& msg);

}  // namespace kvserve

// Aborts with a message when an internal invariant is broken (never for bad input).
#define KV_CHECK(cond)                                                  \
  do {                                                                  \
    if (!(cond)) ::kvserve::CheckFailed(__FILE__, __LINE__, #cond, ""); \
  } while (0)
#define KV_CHECK_MSG(cond, msg)                                            \
  do {                                                                     \
    if (!(cond)) ::kvserve::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

#define KV_RETURN_IF_ERROR(expr)           \
  do {                                     \
    ::kvserve::Status _st = (expr);        \
    if (!_st.ok()) return _st;             \
  } while (0)

#define KV_CONCAT_INNER(a, b) a##b
#define KV_CONCAT(a, b) KV_CONCAT_INNER(a, b)
#define KV_ASSIGN_OR_RETURN(lhs, expr) KV_ASSIGN_OR_RETURN_IMPL(KV_CONCAT(_sor_, __LINE__), lhs, expr)
#define KV_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
