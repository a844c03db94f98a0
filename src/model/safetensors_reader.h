// Safetensors reader: an 8-byte header length, a JSON header mapping tensor names
// to {dtype, shape, data_offsets}, then the data. Single files and sharded
// directories (model.safetensors.index.json).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/tensor.h"
#include "util/mapped_file.h"
#include "util/status.h"

namespace kvserve {

class SafetensorsFile {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses a buffer the caller keeps alive (fuzzing, tests).
  static StatusOr<std::unique_ptr<SafetensorsFile>> FromBuffer(const uint8_t* data, size_t size, const std::string& name);

  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* FindTensor(const std::string& name) const;
  const std::string& path() const { return name_; }

 private:
  SafetensorsFile() = default;
  Status Parse(const uint8_t* data, size_t size);

  std::unique_ptr<MappedFile> file_;
  std::string name_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> index_;
};

// All *.safetensors of a model directory: the shards named by
// model.safetensors.index.json, or model.safetensors alone.
class SafetensorsSet {
 public:
  static StatusOr<std::unique_ptr<SafetensorsSet>> OpenDir(const std::string& dir);
  const Tensor* FindTensor(const std::string& name) const;
  std::vector<const Tensor*> AllTensors() const;
  // Moves the mapped shards out (the model keeps them alive).
  std::vector<std::unique_ptr<SafetensorsFile>> TakeFiles() { return std::move(files_); }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace kvserve
