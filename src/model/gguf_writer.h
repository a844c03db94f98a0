// GGUF v3 writer: metadata of every value type, tensor infos, and tensor data
// streamed to disk tensor by tensor (each tensor's bytes are produced in chunks of
// rows by a caller-supplied fill function), so a multi-gigabyte model never has to
// sit in memory at once. The file appears under its final name only when complete.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/dtype.h"
#include "model/gguf_reader.h"
#include "util/status.h"

namespace kvserve {

// The GGML tensor type number written for `t` (F32 0, F16 1, Q4_0 2, Q8_0 8, Q4_K 12, Q6_K 14, BF16 30).
uint32_t GgmlTypeNumber(DType t);

// Fills the bytes of rows [first_row, first_row + num_rows) of a tensor into `dst`
// (num_rows * row bytes, in the tensor's file precision). A "row" is one innermost
// dimension run (shape.back() elements). Errors abort the write.
using TensorFill = std::function<Status(int64_t first_row, int64_t num_rows, uint8_t* dst)>;

class GgufWriter {
 public:
  // REQUIRES: alignment is a power of two <= 65536. A non-default alignment is recorded as general.alignment.
  explicit GgufWriter(uint32_t alignment = 32);

  // Metadata, kept in insertion order; setting an existing key replaces its value in place.
  void Set(const std::string& key, GgufValue value);
  void SetString(const std::string& key, std::string v);
  void SetUint32(const std::string& key, uint32_t v);
  void SetInt32(const std::string& key, int32_t v);
  void SetUint64(const std::string& key, uint64_t v);
  void SetFloat32(const std::string& key, float v);
  void SetBool(const std::string& key, bool v);
  void SetStringArray(const std::string& key, const std::vector<std::string>& v);
  // Integer arrays in `elem_type` (any integer type); float arrays as float32.
  void SetIntArray(const std::string& key, GgufType elem_type, const std::vector<int64_t>& v);
  void SetFloatArray(const std::string& key, const std::vector<float>& v);

  // Tensor with `shape` outermost-first (as Tensor::shape); data comes from `fill` during Write.
  // Errors: duplicate name, empty/over-4-D shape, row length not a multiple of the block size.
  Status AddTensor(const std::string& name, DType dtype, std::vector<int64_t> shape, TensorFill fill);
  // Tensor whose bytes the caller already has (copied now; for small tensors).
  Status AddTensorBytes(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes);

  // Writes `path` (via `path`.tmp + rename). Fill calls see at most about `chunk_bytes` per call.
  Status Write(const std::string& path, size_t chunk_bytes = size_t{16} << 20) const;

  size_t num_tensors() const { return tensors_.size(); }
  // Sum of tensor data bytes (without alignment padding).
  uint64_t tensor_data_bytes() const;

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    uint64_t offset;  // relative to the data section, aligned
    TensorFill fill;
  };

  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
  uint64_t data_size_ = 0;  // aligned end of the data section so far
};

}  // namespace kvserve
