#include "model/safetensors_reader.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace kvserve {

using nlohmann::json;

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  KV_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mf, MappedFile::Open(path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->name_ = path;
  KV_RETURN_IF_ERROR(f->Parse(mf->data(), mf->size()));
  f->file_ = std::move(mf);
  return f;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBuffer(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->name_ = name;
  KV_RETURN_IF_ERROR(f->Parse(data, size));
  return f;
}

Status SafetensorsFile::Parse(const uint8_t* data, size_t size) {
  uint64_t header_len;
  if (size < 8) return Status::Corrupt(name_ + ": too short for a safetensors header");
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8 || header_len > (uint64_t{100} << 20))
    return Status::Corrupt(fmt::format("{}: header length {} exceeds the file ({} bytes)", name_, header_len, size));
  json header = json::parse(data + 8, data + 8 + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return Status::Corrupt(name_ + ": header is not a JSON object");
  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = name_ + ": tensor '" + name + "'";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      return Status::Corrupt(where + ": entry needs dtype, shape and data_offsets");
    const json& dt = info["dtype"];
    const json& shape = info["shape"];
    const json& offs = info["data_offsets"];
    if (!dt.is_string() || !shape.is_array() || !offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() ||
        !offs[1].is_number_unsigned())
      return Status::Corrupt(where + ": malformed dtype, shape or data_offsets");
    Tensor t;
    t.name = name;
    const std::string d = dt.get<std::string>();
    size_t elem_size;
    if (d == "F32") { t.dtype = DType::kF32; elem_size = 4; }
    else if (d == "F16") { t.dtype = DType::kF16; elem_size = 2; }
    else if (d == "BF16") { t.dtype = DType::kBF16; elem_size = 2; }
    else return Status::Unsupported(where + ": dtype " + d + " is not supported (F32, F16, BF16)");
    uint64_t numel = 1;
    if (shape.size() > 4) return Status::Corrupt(where + ": more than 4 dimensions");
    for (const json& x : shape) {
      if (!x.is_number_unsigned()) return Status::Corrupt(where + ": shape entries must be non-negative integers");
      uint64_t v = x.get<uint64_t>();
      if (v > (uint64_t{1} << 40) || (v != 0 && numel > (uint64_t{1} << 42) / v)) return Status::Corrupt(where + ": shape too large");
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data_size)
      return Status::Corrupt(fmt::format("{}: data_offsets [{}, {}) outside the data section ({} bytes): truncated?", where, begin, end, data_size));
    if (end - begin != numel * elem_size)
      return Status::Corrupt(fmt::format("{}: {} bytes of data for {} elements of {}", where, end - begin, numel, d));
    t.data = base + begin;
    t.nbytes = end - begin;
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  return Status::Ok();
}

const Tensor* SafetensorsFile::FindTensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

StatusOr<std::unique_ptr<SafetensorsSet>> SafetensorsSet::OpenDir(const std::string& dir) {
  namespace fs = std::filesystem;
  auto set = std::make_unique<SafetensorsSet>();
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> shards;
  std::map<std::string, std::string> weight_map;  // tensor -> shard, checked once the shards are open
  if (fs::exists(index_path)) {
    std::ifstream in(index_path);
    std::stringstream ss;
    ss << in.rdbuf();
    json idx = json::parse(ss.str(), nullptr, false);
    if (idx.is_discarded() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      return Status::Corrupt(index_path.string() + ": no weight_map object");
    std::set<std::string> names;
    for (auto& [k, v] : idx["weight_map"].items()) {
      if (!v.is_string()) return Status::Corrupt(index_path.string() + ": weight_map value for '" + k + "' is not a file name");
      std::string f = v.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        return Status::Corrupt(index_path.string() + ": shard name '" + f + "' must be a plain file name");
      names.insert(f);
      weight_map[k] = f;
    }
    shards.assign(names.begin(), names.end());
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shards.push_back("model.safetensors");
  } else {
    return Status::NotFound(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const std::string& s : shards) {
    KV_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> f, SafetensorsFile::Open((fs::path(dir) / s).string()));
    set->files_.push_back(std::move(f));
  }
  for (const auto& [tensor, shard] : weight_map) {
    const SafetensorsFile* file = nullptr;
    for (const auto& f : set->files_)
      if (fs::path(f->path()).filename() == shard) file = f.get();
    if (file == nullptr || file->FindTensor(tensor) == nullptr)
      return Status::Corrupt(index_path.string() + ": tensor '" + tensor + "' is not in its shard " + shard);
  }
  return set;
}

const Tensor* SafetensorsSet::FindTensor(const std::string& name) const {
  for (const auto& f : files_)
    if (const Tensor* t = f->FindTensor(name)) return t;
  return nullptr;
}

std::vector<const Tensor*> SafetensorsSet::AllTensors() const {
  std::vector<const Tensor*> out;
  for (const auto& f : files_)
    for (const Tensor& t : f->tensors()) out.push_back(&t);
  return out;
}

}  // namespace kvserve
