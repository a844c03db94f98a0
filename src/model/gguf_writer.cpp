#include "model/gguf_writer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <memory>

namespace kvserve {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747u;  // "GGUF" little-endian
constexpr uint32_t kGgufVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out.append(s);
}

// Appends the payload of `v` (without its type tag) as element type `t`.
void PutValue(std::string& out, GgufType t, const GgufValue& v) {
  switch (t) {
    case GgufType::kUint8: Put<uint8_t>(out, static_cast<uint8_t>(v.u)); return;
    case GgufType::kInt8: Put<int8_t>(out, static_cast<int8_t>(v.i)); return;
    case GgufType::kUint16: Put<uint16_t>(out, static_cast<uint16_t>(v.u)); return;
    case GgufType::kInt16: Put<int16_t>(out, static_cast<int16_t>(v.i)); return;
    case GgufType::kUint32: Put<uint32_t>(out, static_cast<uint32_t>(v.u)); return;
    case GgufType::kInt32: Put<int32_t>(out, static_cast<int32_t>(v.i)); return;
    case GgufType::kUint64: Put<uint64_t>(out, v.u); return;
    case GgufType::kInt64: Put<int64_t>(out, v.i); return;
    case GgufType::kFloat32: Put<float>(out, static_cast<float>(v.f)); return;
    case GgufType::kFloat64: Put<double>(out, v.f); return;
    case GgufType::kBool: Put<uint8_t>(out, (v.i != 0 || v.u != 0) ? 1 : 0); return;
    case GgufType::kString: PutString(out, v.s); return;
    case GgufType::kArray:
      Put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      Put<uint64_t>(out, v.array.size());
      for (const GgufValue& e : v.array) PutValue(out, v.elem_type, e);
      return;
  }
  KV_CHECK_MSG(false, "unknown GGUF value type");
}

GgufValue IntValue(GgufType t, int64_t x) {
  GgufValue v;
  v.type = t;
  v.i = x;
  v.u = static_cast<uint64_t>(x);
  return v;
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// `st` with `prefix` in front of its message, same code.
Status Prefixed(const Status& st, const std::string& prefix) {
  const std::string msg = prefix + st.message();
  switch (st.code()) {
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(msg);
    case Status::Code::kNotFound: return Status::NotFound(msg);
    case Status::Code::kCorrupt: return Status::Corrupt(msg);
    case Status::Code::kUnsupported: return Status::Unsupported(msg);
    case Status::Code::kIOError: return Status::IOError(msg);
    case Status::Code::kOutOfRange: return Status::OutOfRange(msg);
    case Status::Code::kResourceExhausted: return Status::ResourceExhausted(msg);
    default: return Status::Internal(msg);
  }
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

uint32_t GgmlTypeNumber(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 8;
    case DType::kQ4_K: return 12;
    case DType::kQ6_K: return 14;
    case DType::kBF16: return 30;
    case DType::kQ8_0Rows: KV_CHECK_MSG(false, "q8_0_rows is an in-memory layout of Q8_0 with no GGUF type"); break;
  }
  KV_CHECK_MSG(false, "unknown DType");
  return 0;
}

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  KV_CHECK_MSG(alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= 65536, "GGUF alignment must be a power of two <= 65536");
  if (alignment != kDefaultAlignment) SetUint32("general.alignment", alignment);
}

void GgufWriter::Set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::SetString(const std::string& key, std::string s) {
  GgufValue v;
  v.type = GgufType::kString;
  v.s = std::move(s);
  Set(key, std::move(v));
}

void GgufWriter::SetUint32(const std::string& key, uint32_t x) { Set(key, IntValue(GgufType::kUint32, x)); }
void GgufWriter::SetInt32(const std::string& key, int32_t x) { Set(key, IntValue(GgufType::kInt32, x)); }
void GgufWriter::SetUint64(const std::string& key, uint64_t x) { Set(key, IntValue(GgufType::kUint64, static_cast<int64_t>(x))); }
void GgufWriter::SetBool(const std::string& key, bool x) { Set(key, IntValue(GgufType::kBool, x ? 1 : 0)); }

void GgufWriter::SetFloat32(const std::string& key, float x) {
  GgufValue v;
  v.type = GgufType::kFloat32;
  v.f = x;
  Set(key, std::move(v));
}

void GgufWriter::SetStringArray(const std::string& key, const std::vector<std::string>& strings) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kString;
  v.array.resize(strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    v.array[i].type = GgufType::kString;
    v.array[i].s = strings[i];
  }
  Set(key, std::move(v));
}

void GgufWriter::SetIntArray(const std::string& key, GgufType elem_type, const std::vector<int64_t>& ints) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = elem_type;
  v.array.reserve(ints.size());
  for (int64_t x : ints) v.array.push_back(IntValue(elem_type, x));
  Set(key, std::move(v));
}

void GgufWriter::SetFloatArray(const std::string& key, const std::vector<float>& floats) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kFloat32;
  v.array.resize(floats.size());
  for (size_t i = 0; i < floats.size(); ++i) {
    v.array[i].type = GgufType::kFloat32;
    v.array[i].f = floats[i];
  }
  Set(key, std::move(v));
}

Status GgufWriter::AddTensor(const std::string& name, DType dtype, std::vector<int64_t> shape, TensorFill fill) {
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return Status::InvalidArgument("GGUF writer: duplicate tensor name '" + name + "'");
  }
  if (shape.empty() || shape.size() > 4) return Status::InvalidArgument(fmt::format("GGUF writer: tensor '{}' has {} dimensions (1..4 allowed)", name, shape.size()));
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d <= 0) return Status::InvalidArgument(fmt::format("GGUF writer: tensor '{}' has a dimension of {}", name, d));
    numel *= static_cast<uint64_t>(d);
  }
  const DTypeInfo& info = GetDTypeInfo(dtype);
  if (shape.back() % info.block_elems != 0)
    return Status::InvalidArgument(fmt::format("GGUF writer: tensor '{}': row length {} is not a multiple of the {} block size {}", name,
                                               shape.back(), info.name, info.block_elems));
  if (!fill) return Status::InvalidArgument("GGUF writer: tensor '" + name + "' has no data source");
  PendingTensor t;
  t.name = name;
  t.dtype = dtype;
  t.nbytes = numel / info.block_elems * info.block_bytes;
  t.shape = std::move(shape);
  t.offset = data_size_;
  t.fill = std::move(fill);
  data_size_ = AlignUp(t.offset + t.nbytes, alignment_);
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Status GgufWriter::AddTensorBytes(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes) {
  // Validated as a tensor first; the fill is attached once the byte count is known to match.
  KV_RETURN_IF_ERROR(AddTensor(name, dtype, std::move(shape), [](int64_t, int64_t, uint8_t*) { return Status::Ok(); }));
  PendingTensor& t = tensors_.back();
  if (t.nbytes != bytes.size()) {
    const std::string msg = fmt::format("GGUF writer: tensor '{}' needs {} bytes, got {}", name, t.nbytes, bytes.size());
    data_size_ = t.offset;
    tensors_.pop_back();
    return Status::InvalidArgument(msg);
  }
  auto data = std::make_shared<std::vector<uint8_t>>(bytes.begin(), bytes.end());
  const size_t row_bytes = RowBytes(dtype, t.shape.back());
  t.fill = [data, row_bytes](int64_t first_row, int64_t num_rows, uint8_t* dst) {
    std::memcpy(dst, data->data() + first_row * row_bytes, num_rows * row_bytes);
    return Status::Ok();
  };
  return Status::Ok();
}

uint64_t GgufWriter::tensor_data_bytes() const {
  uint64_t n = 0;
  for (const PendingTensor& t : tensors_) n += t.nbytes;
  return n;
}

Status GgufWriter::Write(const std::string& path, size_t chunk_bytes) const {
  std::string header;
  Put<uint32_t>(header, kGgufMagic);
  Put<uint32_t>(header, kGgufVersion);
  Put<uint64_t>(header, tensors_.size());
  Put<uint64_t>(header, kv_.size());
  for (const auto& [key, value] : kv_) {
    PutString(header, key);
    Put<uint32_t>(header, static_cast<uint32_t>(value.type));
    PutValue(header, value.type, value);
  }
  for (const PendingTensor& t : tensors_) {
    PutString(header, t.name);
    Put<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) Put<uint64_t>(header, static_cast<uint64_t>(*it));  // innermost first
    Put<uint32_t>(header, GgmlTypeNumber(t.dtype));
    Put<uint64_t>(header, t.offset);
  }
  header.resize(AlignUp(header.size(), alignment_), '\0');

  const std::string tmp = path + ".tmp";
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) return Status::IOError(tmp + ": cannot create: " + std::strerror(errno));
  auto fail = [&](const std::string& why) {
    f.reset();
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return Status::IOError(tmp + ": " + why);
  };
  auto write = [&](const void* p, size_t n) { return std::fwrite(p, 1, n, f.get()) == n; };
  if (!write(header.data(), header.size())) return fail(std::string("write failed: ") + std::strerror(errno));

  std::vector<uint8_t> buf;
  uint64_t pos = 0;  // within the data section
  for (const PendingTensor& t : tensors_) {
    KV_CHECK(pos == t.offset);
    const int64_t row_len = t.shape.back();
    const uint64_t row_bytes = RowBytes(t.dtype, row_len);
    const int64_t rows = static_cast<int64_t>(t.nbytes / row_bytes);
    const int64_t rows_per_chunk = std::max<int64_t>(1, static_cast<int64_t>(chunk_bytes / row_bytes));
    for (int64_t r = 0; r < rows; r += rows_per_chunk) {
      const int64_t n = std::min(rows_per_chunk, rows - r);
      buf.assign(n * row_bytes, 0);
      Status st = t.fill(r, n, buf.data());
      if (!st.ok()) {
        f.reset();
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        return Prefixed(st, fmt::format("{}: tensor '{}': ", path, t.name));
      }
      if (!write(buf.data(), buf.size())) return fail(fmt::format("write of tensor '{}' failed: {}", t.name, std::strerror(errno)));
    }
    pos += t.nbytes;
    const uint64_t padded = AlignUp(pos, alignment_);
    static const uint8_t kZeros[65536] = {};
    if (padded > pos && !write(kZeros, padded - pos)) return fail(std::string("write failed: ") + std::strerror(errno));
    pos = padded;
  }
  if (std::fflush(f.get()) != 0) return fail(std::string("flush failed: ") + std::strerror(errno));
  if (std::fclose(f.release()) != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return Status::IOError(tmp + ": close failed: " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Status::IOError(path + ": cannot rename from " + tmp + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace kvserve
