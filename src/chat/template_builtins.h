// Jinja filters, tests, Python string/dict methods and global functions available to
// chat templates (the set Hugging Face's environment exposes that real templates use).
// Errors carry no source position; the renderer prefixes it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"
#include "util/status.h"

namespace kvserve::chat {

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// `value | name(args)`. Unknown filters are an error naming the filter.
StatusOr<Value> ApplyFilter(const std::string& name, const Value& value, const CallArgs& args);

// `value is name(args)`. Unknown tests are an error naming the test.
StatusOr<bool> ApplyTest(const std::string& name, const Value& value, const CallArgs& args);

// `obj.name(args)` for str, dict and list methods; *found is false when `obj` has no
// such method (then the caller reports it).
StatusOr<Value> CallMethod(const Value& obj, const std::string& name, const CallArgs& args, bool* found);

// Global functions: namespace, range, dict, strftime_now, raise_exception.
bool IsGlobalFunction(const std::string& name);
StatusOr<Value> CallGlobal(const std::string& name, const CallArgs& args);

// Python ordering for sort/min/max and < > <= >=: numbers with numbers, strings with
// strings, lists element-wise. Returns -1/0/1.
StatusOr<int> CompareValues(const Value& a, const Value& b);

// Python's str.strip family on `chars` (whitespace when chars is null).
std::string StripChars(const std::string& s, const std::string* chars, bool left, bool right);

}  // namespace kvserve::chat
