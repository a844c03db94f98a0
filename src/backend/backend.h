// The seam between the engine and the hardware.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "backend/batch.h"
#include "model/model_config.h"
#include "util/status.h"

namespace kvserve {

struct Model;

enum class KvCacheDType { kF32, kF16, kBF16, kFP8, kInt8, kInt4 };

// "f32", "f16", "bf16", "fp8", "int8", "int4".
const char* KvCacheDTypeName(KvCacheDType t);
// The inverse of KvCacheDTypeName; InvalidArgument naming `option` and the choices.
StatusOr<KvCacheDType> ParseKvCacheDType(const std::string& s, const char* option);

// Shape of the paged KV cache a backend allocates: per layer, num_blocks blocks of
// block_size tokens x num_kv_heads x head_dim, for K and for V.
struct KvCacheConfig {
  int num_blocks = 0;
  int block_size = 16;
  KvCacheDType dtype = KvCacheDType::kF32;
};

// Bytes one KV block occupies across all layers (K and V).
size_t KvBlockBytes(const ModelConfig& cfg, int block_size, KvCacheDType dtype);

class Backend {
 public:
  virtual ~Backend() = default;

  // Runs the model on `batch`, writing K/V of the new tokens into their blocks and
  // logits (vocab floats per row) of batch.logit_rows into `logits`.
  // REQUIRES: logits.size() >= batch.logit_rows.size() * vocab_size; every block id
  // in batch.block_tables < kv_config().num_blocks.
  virtual Status Forward(const BatchDescriptor& batch, std::span<float> logits) = 0;

  // Copies whole KV blocks (all layers): copy-on-write and partial-block reuse.
  virtual void CopyBlocks(std::span<const std::pair<int32_t, int32_t>> src_dst) = 0;

  // Host memory image of one block (all layers, K and V), for swap/offload.
  virtual size_t BlockBytes() const = 0;
  virtual void ReadBlock(int32_t block, void* dst) const = 0;
  virtual void WriteBlock(int32_t block, const void* src) = 0;

  virtual const KvCacheConfig& kv_config() const = 0;
  virtual std::string name() const = 0;

  // A hint that Forward follows shortly after an idle spell: a backend whose threads
  // sleep when idle wakes them now, so that the step does not pay for it (on the CPU
  // backend ~0.1-0.3 ms on this VM, a few percent of a small model's decode step).
  virtual void WakeThreads() {}
};

}  // namespace kvserve
