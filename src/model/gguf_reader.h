// GGUF v2/v3 reader: metadata and tensor infos parsed eagerly with strict bounds
// checks; tensor data used in place from the memory map (or the caller's buffer).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "model/dtype.h"
#include "model/tensor.h"
#include "util/mapped_file.h"
#include "util/status.h"

namespace kvserve {

// GGUF metadata value types (the file's numbering).
enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::kUint8;
  // Scalars: integers (any width, incl. bool) in `i` / `u`, floats in `f`, strings in `s`.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;
  // Arrays: element type and elements (arrays of arrays are kept nested).
  GgufType elem_type = GgufType::kUint8;
  std::vector<GgufValue> array;
};

class GgufFile {
 public:
  static StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses a buffer the caller keeps alive (fuzzing, tests). `name` is used in errors.
  static StatusOr<std::unique_ptr<GgufFile>> FromBuffer(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return name_; }

  bool Has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* Find(const std::string& key) const;
  // Typed getters: NotFound if absent, InvalidArgument naming the key on a type mismatch.
  StatusOr<std::string> GetString(const std::string& key) const;
  StatusOr<int64_t> GetInt(const std::string& key) const;  // any integer type or bool
  StatusOr<double> GetFloat(const std::string& key) const;  // float or integer types
  StatusOr<bool> GetBool(const std::string& key) const;
  StatusOr<std::vector<std::string>> GetStringArray(const std::string& key) const;
  StatusOr<std::vector<int64_t>> GetIntArray(const std::string& key) const;
  StatusOr<std::vector<float>> GetFloatArray(const std::string& key) const;
  // Defaults for optional keys (still an error if present with the wrong type).
  StatusOr<int64_t> GetIntOr(const std::string& key, int64_t def) const;
  StatusOr<double> GetFloatOr(const std::string& key, double def) const;
  StatusOr<bool> GetBoolOr(const std::string& key, bool def) const;
  StatusOr<std::string> GetStringOr(const std::string& key, const std::string& def) const;

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* FindTensor(const std::string& name) const;

 private:
  GgufFile() = default;
  Status Parse(const uint8_t* data, size_t size);

  std::unique_ptr<MappedFile> file_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace kvserve
