#include "model/gguf_reader.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

namespace kvserve {
namespace {

constexpr uint64_t kMaxStringLen = uint64_t{1} << 30;
constexpr int kMaxArrayDepth = 4;

// A bounds-checked little-endian cursor over the file.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <typename T>
  bool Read(T* out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool ReadString(std::string* out) {
    uint64_t len;
    if (!Read(&len) || len > kMaxStringLen || len > remaining()) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

size_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    default: return 0;
  }
}

bool IsInteger(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64: case GgufType::kBool:
      return true;
    default: return false;
  }
}

bool ReadScalar(Cursor& c, GgufType t, GgufValue* v) {
  v->type = t;
  switch (t) {
    case GgufType::kUint8: { uint8_t x; if (!c.Read(&x)) return false; v->u = x; v->i = x; return true; }
    case GgufType::kInt8: { int8_t x; if (!c.Read(&x)) return false; v->i = x; v->u = static_cast<uint64_t>(x); return true; }
    case GgufType::kUint16: { uint16_t x; if (!c.Read(&x)) return false; v->u = x; v->i = x; return true; }
    case GgufType::kInt16: { int16_t x; if (!c.Read(&x)) return false; v->i = x; v->u = static_cast<uint64_t>(x); return true; }
    case GgufType::kUint32: { uint32_t x; if (!c.Read(&x)) return false; v->u = x; v->i = x; return true; }
    case GgufType::kInt32: { int32_t x; if (!c.Read(&x)) return false; v->i = x; v->u = static_cast<uint64_t>(x); return true; }
    case GgufType::kUint64: { uint64_t x; if (!c.Read(&x)) return false; v->u = x; v->i = static_cast<int64_t>(x); return true; }
    case GgufType::kInt64: { int64_t x; if (!c.Read(&x)) return false; v->i = x; v->u = static_cast<uint64_t>(x); return true; }
    case GgufType::kFloat32: { float x; if (!c.Read(&x)) return false; v->f = x; return true; }
    case GgufType::kFloat64: { double x; if (!c.Read(&x)) return false; v->f = x; return true; }
    case GgufType::kBool: { uint8_t x; if (!c.Read(&x)) return false; v->u = x != 0; v->i = x != 0; return true; }
    case GgufType::kString: return c.ReadString(&v->s);
    default: return false;
  }
}

Status ReadValue(Cursor& c, GgufType t, GgufValue* v, const std::string& where, int depth) {
  if (t != GgufType::kArray) {
    if (static_cast<uint32_t>(t) > 12) return Status::Corrupt(fmt::format("{}: unknown value type {}", where, static_cast<uint32_t>(t)));
    if (!ReadScalar(c, t, v)) return Status::Corrupt(where + ": value runs past the end of the file");
    return Status::Ok();
  }
  if (depth >= kMaxArrayDepth) return Status::Corrupt(where + ": arrays nested too deeply");
  v->type = GgufType::kArray;
  uint32_t et;
  uint64_t n;
  if (!c.Read(&et) || !c.Read(&n)) return Status::Corrupt(where + ": array header runs past the end of the file");
  if (et > 12) return Status::Corrupt(fmt::format("{}: unknown array element type {}", where, et));
  v->elem_type = static_cast<GgufType>(et);
  // Every element takes at least one byte (strings 8), so a count beyond the
  // remaining bytes is corrupt: never allocate from it.
  size_t min_elem = v->elem_type == GgufType::kString ? 8 : (v->elem_type == GgufType::kArray ? 12 : ScalarSize(v->elem_type));
  if (n > c.remaining() / std::max<size_t>(min_elem, 1))
    return Status::Corrupt(fmt::format("{}: array of {} elements does not fit in the file", where, n));
  v->array.resize(n);
  for (uint64_t k = 0; k < n; ++k) KV_RETURN_IF_ERROR(ReadValue(c, v->elem_type, &v->array[k], where, depth + 1));
  return Status::Ok();
}

StatusOr<DType> MapTensorType(uint32_t t, const std::string& where) {
  switch (t) {
    case 0: return DType::kF32;
    case 1: return DType::kF16;
    case 8: return DType::kQ8_0;
    case 2: return DType::kQ4_0;
    case 12: return DType::kQ4_K;
    case 14: return DType::kQ6_K;
    case 30: return DType::kBF16;
    default:
      return Status::Unsupported(fmt::format("{}: tensor type {} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)", where, t));
  }
}

}  // namespace

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  KV_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mf, MappedFile::Open(path));
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->name_ = path;
  KV_RETURN_IF_ERROR(g->Parse(mf->data(), mf->size()));
  g->file_ = std::move(mf);
  return g;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromBuffer(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->name_ = name;
  KV_RETURN_IF_ERROR(g->Parse(data, size));
  return g;
}

Status GgufFile::Parse(const uint8_t* data, size_t size) {
  Cursor c(data, size);
  uint32_t magic;
  if (!c.Read(&magic) || magic != 0x46554747u /* "GGUF" */)
    return Status::Corrupt(name_ + ": not a GGUF file (bad magic)");
  if (!c.Read(&version_)) return Status::Corrupt(name_ + ": truncated header");
  if (version_ < 2 || version_ > 3) return Status::Unsupported(fmt::format("{}: GGUF version {} (supported: 2, 3)", name_, version_));
  uint64_t n_tensors, n_kv;
  if (!c.Read(&n_tensors) || !c.Read(&n_kv)) return Status::Corrupt(name_ + ": truncated header");
  // Each KV pair needs >= 12 bytes and each tensor info >= 24: reject absurd counts up front.
  if (n_kv > size / 12 || n_tensors > size / 24)
    return Status::Corrupt(fmt::format("{}: header claims {} tensors and {} metadata entries, more than the file can hold", name_, n_tensors, n_kv));

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    if (!c.ReadString(&key)) return Status::Corrupt(fmt::format("{}: metadata entry {} key runs past the end of the file", name_, k));
    uint32_t t;
    if (!c.Read(&t)) return Status::Corrupt(fmt::format("{}: metadata '{}' has no type (truncated)", name_, key));
    GgufValue v;
    KV_RETURN_IF_ERROR(ReadValue(c, static_cast<GgufType>(t), &v, name_ + ": metadata '" + key + "'", 0));
    if (!kv_.emplace(key, std::move(v)).second) return Status::Corrupt(fmt::format("{}: metadata '{}' appears twice", name_, key));
  }
  if (const GgufValue* a = Find("general.alignment")) {
    if (!IsInteger(a->type) || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > 65536)
      return Status::Corrupt(name_ + ": general.alignment must be a power of two <= 65536");
    alignment_ = a->u;
  }

  struct RawInfo {
    uint64_t offset;
  };
  std::vector<RawInfo> raw;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    Tensor t;
    if (!c.ReadString(&t.name)) return Status::Corrupt(fmt::format("{}: tensor info {} name runs past the end of the file", name_, k));
    const std::string where = name_ + ": tensor '" + t.name + "'";
    uint32_t n_dims;
    if (!c.Read(&n_dims)) return Status::Corrupt(where + ": truncated tensor info");
    if (n_dims == 0 || n_dims > 4) return Status::Corrupt(fmt::format("{}: {} dimensions (1..4 allowed)", where, n_dims));
    std::vector<int64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t x;
      if (!c.Read(&x)) return Status::Corrupt(where + ": truncated tensor info");
      if (x == 0 || x > (uint64_t{1} << 40) || numel > (uint64_t{1} << 42) / x)
        return Status::Corrupt(fmt::format("{}: dimension {} = {} is out of range", where, d, x));
      numel *= x;
      ne[d] = static_cast<int64_t>(x);
    }
    uint32_t type;
    uint64_t offset;
    if (!c.Read(&type) || !c.Read(&offset)) return Status::Corrupt(where + ": truncated tensor info");
    KV_ASSIGN_OR_RETURN(t.dtype, MapTensorType(type, where));
    const DTypeInfo& info = GetDTypeInfo(t.dtype);
    if (ne[0] % info.block_elems != 0)
      return Status::Corrupt(fmt::format("{}: row length {} is not a multiple of the {} block size {}", where, ne[0], info.name, info.block_elems));
    t.nbytes = static_cast<size_t>(numel / info.block_elems) * info.block_bytes;
    t.shape.assign(ne.rbegin(), ne.rend());  // outermost first
    if (tensor_index_.count(t.name)) return Status::Corrupt(where + ": duplicate tensor name");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
    raw.push_back({offset});
  }

  const uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > size && n_tensors > 0) return Status::Corrupt(name_ + ": truncated before the tensor data");
  for (size_t k = 0; k < tensors_.size(); ++k) {
    Tensor& t = tensors_[k];
    const uint64_t off = raw[k].offset;
    if (off % alignment_ != 0)
      return Status::Corrupt(fmt::format("{}: tensor '{}': data offset {} is not aligned to {}", name_, t.name, off, alignment_));
    if (off > size || data_start + off > size || t.nbytes > size - data_start - off)
      return Status::Corrupt(fmt::format("{}: tensor '{}': data [{}, {}) lies beyond the end of the file ({} bytes): truncated?", name_, t.name,
                                         data_start + off, data_start + off + t.nbytes, size));
    t.data = data + data_start + off;
  }
  return Status::Ok();
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const Tensor* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufType::kString) return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not a string");
  return v->s;
}

StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (!IsInteger(v->type)) return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not an integer");
  return v->i;
}

StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (v->type == GgufType::kFloat32 || v->type == GgufType::kFloat64) return v->f;
  if (IsInteger(v->type)) return static_cast<double>(v->i);
  return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not a number");
}

StatusOr<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (!IsInteger(v->type)) return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not a bool");
  return v->i != 0;
}

StatusOr<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString)
    return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not an array of strings");
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) out.push_back(e.s);
  return out;
}

StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufType::kArray || !IsInteger(v->elem_type))
    return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not an array of integers");
  std::vector<int64_t> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) out.push_back(e.i);
  return out;
}

StatusOr<std::vector<float>> GgufFile::GetFloatArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(name_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufType::kArray || (v->elem_type != GgufType::kFloat32 && v->elem_type != GgufType::kFloat64))
    return Status::InvalidArgument(name_ + ": metadata '" + key + "' is not an array of floats");
  std::vector<float> out;
  out.reserve(v->array.size());
  for (const auto& e : v->array) out.push_back(static_cast<float>(e.f));
  return out;
}

StatusOr<int64_t> GgufFile::GetIntOr(const std::string& key, int64_t def) const { return Has(key) ? GetInt(key) : def; }
StatusOr<double> GgufFile::GetFloatOr(const std::string& key, double def) const { return Has(key) ? GetFloat(key) : def; }
StatusOr<bool> GgufFile::GetBoolOr(const std::string& key, bool def) const { return Has(key) ? GetBool(key) : def; }
StatusOr<std::string> GgufFile::GetStringOr(const std::string& key, const std::string& def) const {
  return Has(key) ? GetString(key) : StatusOr<std::string>(def);
}

}  // namespace kvserve
