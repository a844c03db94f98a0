#include "backend/cpu/cpu_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/thread_pool.h"
#include "model/quant.h"
#include "model/weight_memory.h"
#include "util/aligned_vector.h"
#include "util/huge_page_region.h"

namespace kvserve {

const char* CpuForwardProfile::Name(int phase) {
  static constexpr const char* kNames[kNumPhases] = {"set-up, embedding, norms", "Q/K/V products", "RoPE, K/V writes", "attention",
                                                     "attention output product", "gate/up products, SwiGLU", "down product",
                                                     "logits"};
  return phase >= 0 && phase < kNumPhases ? kNames[phase] : "?";
}

namespace {

using Precision = CpuBackendConfig::Precision;

// Adds the wall time since the previous lap to a phase of the profile (no clock reads
// without one).
class PhaseClock {
 public:
  explicit PhaseClock(CpuForwardProfile* profile) : profile_(profile) {
    if (profile_) {
      ++profile_->passes;
      last_ = std::chrono::steady_clock::now();
    }
  }
  void Lap(CpuForwardProfile::Phase phase) {
    if (!profile_) return;
    const auto now = std::chrono::steady_clock::now();
    profile_->seconds[phase] += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  CpuForwardProfile* profile_;
  std::chrono::steady_clock::time_point last_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Model& model, const CpuBackendConfig& config)
      : model_(model), cfg_(model.config), config_(config), pool_(config.num_threads),
        kernels_(config.precision == Precision::kReference ? ScalarDotKernels()
                 : config.kernels != nullptr                ? *config.kernels
                                                            : BestDotKernels()) {
    f16_kv_ = config_.kv.dtype == KvCacheDType::kF16;
    block_elems_ = static_cast<size_t>(cfg_.num_kv_heads) * config_.kv.block_size * cfg_.head_dim;
    block_bytes_ = block_elems_ * (f16_kv_ ? sizeof(uint16_t) : sizeof(float));
    head_bytes_ = block_bytes_ / cfg_.num_kv_heads;
    const size_t total = static_cast<size_t>(cfg_.num_layers) * config_.kv.num_blocks * block_bytes_;
    // Anonymous memory: the kernel hands out zero pages lazily, so a large pool costs
    // nothing until blocks are used; 2 MiB pages for the same reason as the weights
    // (attention walks every block of a long context each step).
    auto k = HugePageRegion::Allocate(total);
    auto v = HugePageRegion::Allocate(total);
    KV_CHECK_MSG(k.ok() && v.ok(), "out of memory allocating the KV cache");
    k_region_ = std::move(*k);
    v_region_ = std::move(*v);
    k_cache_ = static_cast<uint8_t*>(k_region_->data());
    v_cache_ = static_cast<uint8_t*>(v_region_->data());
    max_in_ = std::max({cfg_.hidden_size, cfg_.q_dim(), cfg_.intermediate_size});
  }

  Status Forward(const BatchDescriptor& batch, std::span<float> logits) override;
  void CopyBlocks(std::span<const std::pair<int32_t, int32_t>> src_dst) override;
  size_t BlockBytes() const override { return static_cast<size_t>(cfg_.num_layers) * 2 * block_bytes_; }
  void ReadBlock(int32_t block, void* dst) const override;
  void WriteBlock(int32_t block, const void* src) override;
  const KvCacheConfig& kv_config() const override { return config_.kv; }
  void WakeThreads() override { pool_.Wake(); }
  std::string name() const override {
    return std::string("cpu-") + (config_.precision == Precision::kFast ? kernels_.name : "reference") + (f16_kv_ ? "-kv-f16" : "");
  }

 private:
  Status Validate(const BatchDescriptor& batch, size_t logits_size) const;
  // A layer's KV head's piece of a block: block_size keys (or values) of head_dim
  // elements of the cache's dtype.
  size_t HeadPiece(int layer, int kv_head, int32_t block) const {
    return ((static_cast<size_t>(layer) * cfg_.num_kv_heads + kv_head) * config_.kv.num_blocks + block) * head_bytes_;
  }
  uint8_t* KHead(int layer, int kv_head, int32_t block) const { return k_cache_ + HeadPiece(layer, kv_head, block); }
  uint8_t* VHead(int layer, int kv_head, int32_t block) const { return v_cache_ + HeadPiece(layer, kv_head, block); }
  // Element i of a layer's block piece as a float (the reference path's reads).
  float KvElement(const uint8_t* piece, size_t i) const {
    if (f16_kv_) {
      uint16_t h;
      std::memcpy(&h, piece + i * sizeof(uint16_t), sizeof h);
      return Fp16ToFloat(h);
    }
    float f;
    std::memcpy(&f, piece + i * sizeof(float), sizeof f);
    return f;
  }
  // The new tokens' K and V into their slots (keys transposed within the block).
  void WriteKv(const BatchDescriptor& batch, int layer);
  // Rows of a weight per unit of work: they stay in cache while every token of the
  // batch passes over them.
  static constexpr int64_t kRowChunk = 16;
  // With fewer tokens than a prefill tile nothing is reused from cache, so a unit of
  // work is as many rows as a thread claims at once (ThreadPool::Options::claim
  // grains): fewer calls and copies per row in a decode step.
  static constexpr int64_t kDecodeRowChunk = 128;
  static int64_t RowChunk(int64_t T) { return T < kDotTile ? kDecodeRowChunk : kRowChunk; }
  enum class Write { kStore, kAdd };  // y = x . w^T, or y += x . w^T (a residual connection)
  struct Product {
    const Tensor* w;
    float* y;  // [T, w.rows]
    Write write = Write::kStore;
  };
  // y[T, w.rows] = x[T, w.cols] . w^T
  void MatMul(const Tensor& w, const float* x, int64_t T, float* y) { MatMuls({{&w, y}}, x, T); }
  // Several products of the same input (Q/K/V) in one parallel pass: the input is
  // quantized once and the threads share out the rows of all of them.
  // REQUIRES: every weight has x's width.
  void MatMuls(std::initializer_list<Product> products, const float* x, int64_t T);
  // out[T, I] = silu(x . gate^T) * (x . up^T)
  void SwiGLU(const Tensor& gate, const Tensor& up, const float* x, int64_t T, float* out);
  // A product's rows are shared out kRowChunk at a time, and a thread that runs out
  // takes over the rest of a slower one's rows (without that, one of two threads
  // waited for the other ~30% of a decode product's time on this VM; with it ~6%).
  static constexpr ThreadPool::Options kProductRows{.grain = kRowChunk, .steal = true, .claim = 8};
  static_assert(kDecodeRowChunk == kProductRows.claim * kProductRows.grain);
  // The fast path's pieces: x's Q8 form into xq_/xs_ when q8; then
  // part[t * RowChunk(T) + (r - rb)] = dot(w row r, x row t) for r in [rb, re), re - rb <= RowChunk(T).
  void PrepareActivations(bool q8, const float* x, int64_t in, int64_t T);
  void ProductRows(const Tensor& w, const float* x, bool q8, int64_t T, int64_t rb, int64_t re, float* part,
                   float* scratch) const;
  void RmsNorm(const float* x, const float* w, float* y, int64_t T, int n) const;
  // The rotation of each new token's position, cos and sin per frequency: the same for
  // every layer and for q and k, so computed once per forward pass.
  void RopeTable(const std::vector<int32_t>& positions);
  void Rope(float* v, int64_t T, int n_heads) const;
  // out[t, h] = softmax(q[t, h] . K / sqrt(d)) V over the keys new token t sees.
  void Attention(const BatchDescriptor& batch, int layer, const float* q, float* out);
  void AttentionReference(const BatchDescriptor& batch, int layer, const float* q, float* out);
  void AttentionFast(const BatchDescriptor& batch, int layer, const float* q, float* out);
  // The keys new token t attends to are positions [*first, *last] of its sequence.
  void KeyRange(const BatchDescriptor& batch, int64_t t, int64_t* first, int64_t* last) const;

  const Model& model_;
  const ModelConfig& cfg_;
  CpuBackendConfig config_;
  ThreadPool pool_;
  const DotKernels& kernels_;
  bool f16_kv_ = false;     // the KV cache holds f16 (else f32)
  size_t block_elems_ = 0;  // K (or V) elements of one layer's piece of a block
  size_t block_bytes_ = 0;  // their bytes
  size_t head_bytes_ = 0;   // one KV head's share of them
  int max_in_ = 0;
  std::unique_ptr<HugePageRegion> k_region_, v_region_;
  // Keys transposed within a block, [layer][kv head][block][head dim][slot], so attention
  // scores a run of keys with vector FMAs (DotKernels::attend); values as rows,
  // [layer][kv head][block][slot][head dim]. f32 or f16 elements (config_.kv.dtype).
  // KV head outside block: attention reads one KV head's keys (then values) across a
  // run of a sequence's blocks, which are mostly consecutive ids, so the run is one
  // forward stream instead of a head's share of every block's piece. Attention per
  // decode step at a 1000-token context (decode_bench --phases, old and new binaries
  // alternated): SmolLM2 2.14-2.32 -> 1.46-1.59 ms at 1 thread, TinyLlama 3.08-3.22 ->
  // 2.04-2.06; level at 128 tokens.
  uint8_t* k_cache_ = nullptr;
  uint8_t* v_cache_ = nullptr;
  // Per-step buffers, reused.
  // On cache lines (util/aligned_vector.h): the kernels read them in 64-byte vectors.
  AlignedVector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_;
  AlignedVector<int8_t> xq_;
  AlignedVector<float> xs_;
  std::vector<AlignedVector<float>> thread_scratch_;
  std::vector<AlignedVector<float>> thread_part_;  // 2 x T x RowChunk(T) per thread (gate and up)
  std::vector<std::vector<KvSpan>> thread_spans_;  // a run's KV spans per thread (attention)
  std::vector<int32_t> token_seq_;  // new token -> its sequence index
  // AttentionFast: token t's runs of KV blocks are [run_begin_[t], run_begin_[t + 1]);
  // run_state_ holds split runs' softmax states.
  std::vector<int64_t> run_begin_;
  std::vector<float> run_state_;
  std::vector<float> rope_cos_, rope_sin_;  // [T, head_dim / 2]
  std::vector<uint16_t> key_f16_;             // one key in f16 before its transposed write
};

Status CpuBackend::Validate(const BatchDescriptor& b, size_t logits_size) const {
  const size_t T = b.tokens.size();
  if (b.positions.size() != T) return Status::InvalidArgument(fmt::format("batch: {} positions for {} tokens", b.positions.size(), T));
  size_t covered = 0;
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const SequenceSlice& q = b.seqs[s];
    if (q.token_begin != static_cast<int32_t>(covered) || q.num_tokens <= 0 || q.context_len < 0)
      return Status::InvalidArgument(fmt::format("batch: sequence {} has token range [{}, +{}) after {} tokens", s, q.token_begin, q.num_tokens, covered));
    covered += q.num_tokens;
    const int64_t needed = (static_cast<int64_t>(q.context_len) + q.num_tokens + config_.kv.block_size - 1) / config_.kv.block_size;
    if (q.num_blocks < needed || q.block_table_begin < 0 || static_cast<size_t>(q.block_table_begin) + q.num_blocks > b.block_tables.size())
      return Status::InvalidArgument(fmt::format("batch: sequence {} needs {} blocks, its table has {}", s, needed, q.num_blocks));
    for (int32_t i = 0; i < q.num_blocks; ++i) {
      int32_t blk = b.block_tables[q.block_table_begin + i];
      if (blk < 0 || blk >= config_.kv.num_blocks)
        return Status::InvalidArgument(fmt::format("batch: block id {} out of range [0, {})", blk, config_.kv.num_blocks));
    }
    if (q.context_len + q.num_tokens > cfg_.max_context * 64)
      return Status::InvalidArgument(fmt::format("batch: sequence {} is {} tokens long", s, q.context_len + q.num_tokens));
  }
  if (covered != T) return Status::InvalidArgument(fmt::format("batch: sequences cover {} of {} tokens", covered, T));
  for (int32_t t : b.tokens)
    if (t < 0 || t >= cfg_.vocab_size) return Status::InvalidArgument(fmt::format("batch: token id {} out of range [0, {})", t, cfg_.vocab_size));
  for (int32_t r : b.logit_rows)
    if (r < 0 || static_cast<size_t>(r) >= T) return Status::InvalidArgument(fmt::format("batch: logit row {} out of range", r));
  if (logits_size < b.logit_rows.size() * static_cast<size_t>(cfg_.vocab_size))
    return Status::InvalidArgument("batch: logits buffer too small");
  return Status::Ok();
}

void CpuBackend::PrepareActivations(bool q8, const float* x, int64_t in, int64_t T) {
  if (!q8) return;
  auto quantize = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) QuantizeActivationQ8(x + t * in, in, xq_.data() + t * in, xs_.data() + t * (in / 32));
  };
  // A decode step's few rows are quicker to quantize here than to hand out.
  if (T < 8) quantize(0, T, 0);
  else pool_.ParallelFor(T, quantize);
}

void CpuBackend::ProductRows(const Tensor& w, const float* x, bool q8, int64_t T, int64_t rb, int64_t re, float* part,
                             float* scratch) const {
  const int64_t in = w.cols(), stride = RowChunk(T);
  const int8_t* xq = q8 ? xq_.data() : nullptr;
  const float* xs = q8 ? xs_.data() : nullptr;
  int64_t t = 0;
  // Prefill: kDotTile tokens per weight row load.
  for (; t + kDotTile <= T; t += kDotTile)
    DotRowsTile(kernels_, w, x + t * in, q8 ? xq + t * in : nullptr, q8 ? xs + t * (in / 32) : nullptr, rb, re,
                part + t * stride, stride, scratch);
  for (; t < T; ++t)
    DotRows(kernels_, w, x + t * in, q8 ? xq + t * in : nullptr, q8 ? xs + t * (in / 32) : nullptr, rb, re,
            part + t * stride, scratch);
}

void CpuBackend::MatMuls(std::initializer_list<Product> products, const float* x, int64_t T) {
  const int64_t in = products.begin()->w->cols();
  int64_t total_rows = 0;
  bool q8 = false;
  for (const Product& p : products) {
    KV_CHECK(p.w->cols() == in);
    total_rows += p.w->rows();
    q8 = q8 || UsesQ8Activations(p.w->dtype);
  }
  // Runs fn(product, row_begin, row_end) over the products' rows in [r0, r1) of their concatenation.
  auto for_rows = [&](int64_t r0, int64_t r1, auto&& fn) {
    int64_t base = 0;
    for (const Product& p : products) {
      const int64_t rows = p.w->rows();
      const int64_t b = std::max(r0, base), e = std::min(r1, base + rows);
      if (b < e) fn(p, b - base, e - base);
      base += rows;
    }
  };
  if (config_.precision == Precision::kReference) {
    // Float32 weights (one dequantized row at a time), double accumulation.
    pool_.ParallelFor(total_rows, [&](int64_t r0, int64_t r1, int tid) {
      AlignedVector<float>& row = thread_scratch_[tid];
      for_rows(r0, r1, [&](const Product& p, int64_t rb, int64_t re) {
        const Tensor& w = *p.w;
        const int64_t out = w.rows();
        const size_t row_bytes = RowBytes(w.dtype, in);
        for (int64_t r = rb; r < re; ++r) {
          DequantizeRow(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes, row.data(), in);
          for (int64_t t = 0; t < T; ++t) {
            const float* xt = x + t * in;
            double s = 0;
            for (int64_t i = 0; i < in; ++i) s += static_cast<double>(row[i]) * xt[i];
            float& y = p.y[t * out + r];
            y = p.write == Write::kAdd ? y + static_cast<float>(s) : static_cast<float>(s);
          }
        }
      });
    }, 16);
    return;
  }
  PrepareActivations(q8, x, in, T);
  const int64_t chunk = RowChunk(T);
  pool_.ParallelFor(total_rows, [&](int64_t r0, int64_t r1, int tid) {
    float* part = thread_part_[tid].data();
    float* scratch = thread_scratch_[tid].data();
    for_rows(r0, r1, [&](const Product& p, int64_t rb, int64_t rend) {
      const int64_t out = p.w->rows();
      for (int64_t rc = rb; rc < rend; rc += chunk) {
        const int64_t re = std::min(rend, rc + chunk);
        ProductRows(*p.w, x, q8, T, rc, re, part, scratch);
        for (int64_t t = 0; t < T; ++t) {
          float* y = p.y + t * out + rc;
          const float* src = part + t * chunk;
          if (p.write == Write::kAdd) {
            for (int64_t i = 0; i < re - rc; ++i) y[i] += src[i];
          } else {
            std::memcpy(y, src, (re - rc) * sizeof(float));
          }
        }
      }
    });
  }, kProductRows);
}

void CpuBackend::SwiGLU(const Tensor& gate, const Tensor& up, const float* x, int64_t T, float* out) {
  const int64_t I = gate.rows();
  KV_CHECK(up.rows() == I && up.cols() == gate.cols());
  if (config_.precision == Precision::kReference) {
    MatMuls({{&gate, gate_.data()}, {&up, up_.data()}}, x, T);
    for (int64_t i = 0; i < T * I; ++i) {
      const float g = gate_[i];
      out[i] = g / (1.0f + std::exp(-g)) * up_[i];
    }
    return;
  }
  if (T < kDotTile) {
    // Decode: gate and up as one product pass over their rows (adjacent in the
    // huge-page copy), so each thread streams one contiguous run of weights; the
    // activation is then a pass over a few thousand floats. Pairing gate and up rows
    // per unit, as below, made each thread jump between two streams every 128 rows:
    // the gate/up phase ran at 66% of a 2-thread read for SmolLM2-135M against 92%
    // for the down product; this way decode is 6-7% faster for SmolLM2 and 1% for
    // TinyLlama (decode steps alternated in one process).
    MatMuls({{&gate, gate_.data()}, {&up, up_.data()}}, x, T);
    kernels_.silu_mul(gate_.data(), up_.data(), out, T * I);
    return;
  }
  const bool q8 = UsesQ8Activations(gate.dtype) || UsesQ8Activations(up.dtype);
  PrepareActivations(q8, x, gate.cols(), T);
  // Prefill: gate and up rows side by side, so each thread applies the activation to
  // the rows it produced (still in cache) instead of a serial pass over T x I afterwards.
  const int64_t chunk = RowChunk(T);
  pool_.ParallelFor(I, [&](int64_t r0, int64_t r1, int tid) {
    float* g = thread_part_[tid].data();
    float* u = g + T * chunk;
    float* scratch = thread_scratch_[tid].data();
    for (int64_t rc = r0; rc < r1; rc += chunk) {
      const int64_t re = std::min(r1, rc + chunk);
      ProductRows(gate, x, q8, T, rc, re, g, scratch);
      ProductRows(up, x, q8, T, rc, re, u, scratch);
      for (int64_t t = 0; t < T; ++t) kernels_.silu_mul(g + t * chunk, u + t * chunk, out + t * I + rc, re - rc);
    }
  }, kProductRows);
}

void CpuBackend::RmsNorm(const float* x, const float* w, float* y, int64_t T, int n) const {
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * n;
    // Eight partial sums: one chain of dependent double adds took ~1 us for a 576-wide
    // row, twice a layer, on one thread while the others wait.
    double part[8] = {};
    int i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) part[k] += static_cast<double>(xt[i + k]) * xt[i + k];
    for (; i < n; ++i) part[0] += static_cast<double>(xt[i]) * xt[i];
    const double ss = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    const double scale = 1.0 / std::sqrt(ss / n + cfg_.rms_norm_eps);
    for (i = 0; i < n; ++i) y[t * n + i] = static_cast<float>(xt[i] * scale) * w[i];
  }
}

void CpuBackend::RopeTable(const std::vector<int32_t>& positions) {
  const int half = cfg_.head_dim / 2;
  rope_cos_.resize(positions.size() * half);
  rope_sin_.resize(positions.size() * half);
  for (size_t t = 0; t < positions.size(); ++t)
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(positions[t]) * model_.rope_inv_freq[i];
      rope_cos_[t * half + i] = static_cast<float>(std::cos(angle));
      rope_sin_[t * half + i] = static_cast<float>(std::sin(angle));
    }
}

void CpuBackend::Rope(float* v, int64_t T, int n_heads) const {
  const int D = cfg_.head_dim, half = D / 2;
  const bool adjacent = cfg_.rope_style == RopeStyle::kAdjacentPairs;
  for (int64_t t = 0; t < T; ++t) {
    const float* cs = rope_cos_.data() + t * half;
    const float* sn = rope_sin_.data() + t * half;
    for (int h = 0; h < n_heads; ++h) {
      float* head = v + (t * n_heads + h) * D;
      for (int i = 0; i < half; ++i) {
        const int a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
        const float x0 = head[a], x1 = head[b];
        head[a] = x0 * cs[i] - x1 * sn[i];
        head[b] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

void CpuBackend::KeyRange(const BatchDescriptor& b, int64_t t, int64_t* first, int64_t* last) const {
  const SequenceSlice& seq = b.seqs[token_seq_[t]];
  *last = seq.context_len + (t - seq.token_begin);  // the token's own position
  *first = cfg_.sliding_window > 0 ? std::max<int64_t>(0, *last - cfg_.sliding_window + 1) : 0;
}

void CpuBackend::Attention(const BatchDescriptor& b, int layer, const float* q, float* out) {
  if (config_.precision == Precision::kReference) AttentionReference(b, layer, q, out);
  else AttentionFast(b, layer, q, out);
}

void CpuBackend::AttentionReference(const BatchDescriptor& b, int layer, const float* q, float* out) {
  const int H = cfg_.num_heads, D = cfg_.head_dim, bs = config_.kv.block_size, group = H / cfg_.num_kv_heads;
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  pool_.ParallelFor(T * H, [&](int64_t i0, int64_t i1, int tid) {
    AlignedVector<float>& scores = thread_scratch_[tid];
    std::vector<double> acc(D);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t t = item / H;
      const int h = static_cast<int>(item % H), kvh = h / group;
      const int32_t* table = b.block_tables.data() + b.seqs[token_seq_[t]].block_table_begin;
      int64_t first, p;
      KeyRange(b, t, &first, &p);
      const float* qh = q + (t * H + h) * D;
      float* oh = out + (t * H + h) * D;
      // Two passes in double: exact max first, then exp-weighted sum of values. Key j's
      // element i is at i * bs from its first (transposed blocks).
      if (static_cast<int64_t>(scores.size()) < p + 1) scores.resize(p + 1);
      double maxs = -INFINITY;
      for (int64_t j = first; j <= p; ++j) {
        const uint8_t* piece = KHead(layer, kvh, table[j / bs]);
        const size_t kj = j % bs;
        double d = 0;
        for (int i = 0; i < D; ++i) d += static_cast<double>(qh[i]) * KvElement(piece, kj + static_cast<size_t>(i) * bs);
        scores[j] = static_cast<float>(d * scale);
        maxs = std::max<double>(maxs, scores[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = first; j <= p; ++j) {
        const double e = std::exp(static_cast<double>(scores[j]) - maxs);
        sum += e;
        const uint8_t* piece = VHead(layer, kvh, table[j / bs]);
        const size_t vj = static_cast<size_t>(j % bs) * D;
        for (int i = 0; i < D; ++i) acc[i] += e * KvElement(piece, vj + i);
      }
      for (int i = 0; i < D; ++i) oh[i] = static_cast<float>(acc[i] / sum);
    }
  });
}

// A unit of work is one new token's keys in one run of whole KV blocks, for all its
// query heads: a KV head's keys (then its values) over a sequence's consecutive blocks
// are one forward stream in the pool, and a block is read from memory once for all the
// query heads that use it. A token with many keys and few other tokens beside it (a
// decode step) is split into several runs, one thread each: its (KV head, block) pairs
// are taken in one order, KV head by KV head, and cut into equal runs, so a run is a
// few long streams rather than every KV head's short share, and only a KV head that a
// cut falls in has online-softmax states to merge (TinyLlama's 4 KV heads on 2 threads:
// none; SmolLM2's 3: the middle one). Cutting each KV head's blocks into one share per
// run instead had each thread read 3 streams of 4 blocks at a 128-token context, where a
// cold stream of 4 blocks runs at ~17 GB/s and one of 8 at ~21. The kernel scores a KV
// head's query heads together, so each key and value is loaded (and in f16 widened)
// once per group, and takes the whole run (one span per block) in one call, so the
// softmax and the pass over the values happen once per run and KV head.
void CpuBackend::AttentionFast(const BatchDescriptor& b, int layer, const float* q, float* out) {
  const int H = cfg_.num_heads, KVH = cfg_.num_kv_heads, D = cfg_.head_dim, group = H / KVH, bs = config_.kv.block_size;
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  // Runs per token: one per thread while they would be short (each run starts on a cold
  // block and adds a state to merge: SmolLM2, 128-token context, 2 threads, attention
  // 0.29-0.37 ms a step with one run per thread against 0.36-0.43 with two, in three
  // alternations), two per thread from kMinRunBlocks blocks a KV head on (with stealing,
  // a faster thread then takes over part of a slower one's share: level at 1000
  // tokens), never more runs than (KV head, block) pairs; one run on one thread.
  constexpr int64_t kMinRunBlocks = 8;
  const int threads = pool_.num_threads();
  run_begin_.resize(T + 1);
  run_begin_[0] = 0;
  for (int64_t t = 0; t < T; ++t) {
    int64_t first, p;
    KeyRange(b, t, &first, &p);
    const int64_t blocks = p / bs - first / bs + 1;
    const int64_t per_thread = blocks >= 2 * threads * kMinRunBlocks ? 2 : 1;
    const int64_t runs_wanted = threads == 1 ? 1 : (per_thread * threads + T - 1) / T;
    run_begin_[t + 1] = run_begin_[t] + std::min(runs_wanted, blocks * KVH);
  }
  const int64_t runs = run_begin_[T];
  // Per split run: m and sum of each head, then each head's unnormalized output; only
  // the heads of a KV head the run shares with another run are used.
  const size_t state_floats = static_cast<size_t>(H) * (D + 2);
  if (runs > T) run_state_.resize(runs * state_floats);
  // Run `run` of `n_runs` over `units` (KV head, block) pairs starts at this pair;
  // pair u lies in run run_of(units, u, n_runs) (the last run starting at or before it).
  auto run_start = [](int64_t units, int64_t run, int64_t n_runs) { return units * run / n_runs; };
  auto run_of = [](int64_t units, int64_t u, int64_t n_runs) { return ((u + 1) * n_runs - 1) / units; };
  pool_.ParallelFor(runs, [&](int64_t r0, int64_t r1, int tid) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = std::upper_bound(run_begin_.begin(), run_begin_.end(), r) - run_begin_.begin() - 1;
      const int64_t n_runs = run_begin_[t + 1] - run_begin_[t], run = r - run_begin_[t];
      const int32_t* table = b.block_tables.data() + b.seqs[token_seq_[t]].block_table_begin;
      int64_t first, p;
      KeyRange(b, t, &first, &p);
      const int64_t fb = first / bs, nb = p / bs - fb + 1;
      const int64_t u0 = run_start(nb * KVH, run, n_runs), u1 = run_start(nb * KVH, run + 1, n_runs);
      // The run's first block is asked for here; the kernel asks for each next block's
      // keys and each block's values while it scores.
      const uint8_t* first_keys = KHead(layer, static_cast<int>(u0 / nb), table[fb + u0 % nb]);
      if (kernels_.software_prefetch)
        for (size_t off = 0; off < head_bytes_; off += 64) __builtin_prefetch(first_keys + off);
      std::vector<KvSpan>& spans = thread_spans_[tid];
      const size_t elem = block_bytes_ / block_elems_;
      float* whole = thread_scratch_[tid].data();  // m and sum of a KV head this run has whole
      for (int kvh = static_cast<int>(u0 / nb); kvh * nb < u1; ++kvh) {
        const int64_t b0 = fb + std::max<int64_t>(0, u0 - kvh * nb), b1 = fb + std::min(nb, u1 - kvh * nb);
        spans.resize(b1 - b0);
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t j0 = std::max(first, blk * bs), j1 = std::min(p + 1, (blk + 1) * bs);
          // Key j0's column and value row within the KV head's piece of the block.
          const size_t k_at = j0 - blk * bs, v_at = (j0 - blk * bs) * D;
          spans[blk - b0] = {KHead(layer, kvh, table[blk]) + k_at * elem, VHead(layer, kvh, table[blk]) + v_at * elem, j1 - j0};
        }
        const int h = kvh * group;
        const bool is_whole = b1 - b0 == nb;
        // run_state_ holds split runs only (it may be empty when every run is whole).
        float* st = is_whole ? nullptr : run_state_.data() + r * state_floats;
        float* m = is_whole ? whole : st + h;
        float* sum = is_whole ? whole + group : st + H + h;
        float* o = is_whole ? out + (t * H + h) * D : st + 2 * H + h * D;
        std::fill_n(m, group, -INFINITY);
        std::fill_n(sum, group, 0.0f);
        std::fill_n(o, group * D, 0.0f);
        if (f16_kv_) kernels_.attend_f16(q + (t * H + h) * D, group, spans.data(), static_cast<int>(spans.size()), bs, D, scale, m, sum, o);
        else kernels_.attend(q + (t * H + h) * D, group, spans.data(), static_cast<int>(spans.size()), bs, D, scale, m, sum, o);
        if (is_whole) {
          for (int g = 0; g < group; ++g) {
            const float inv = 1.0f / sum[g];
            for (int d = 0; d < D; ++d) o[g * D + d] *= inv;
          }
        }
      }
    }
  }, ThreadPool::Options{.grain = 1, .steal = true});  // stealing: in prefill later tokens have more keys
  if (runs == T) return;
  // Merge the KV heads split between runs: rescale each run's sums to the largest max.
  for (int64_t t = 0; t < T; ++t) {
    const int64_t n_runs = run_begin_[t + 1] - run_begin_[t];
    if (n_runs == 1) continue;
    int64_t first, p;
    KeyRange(b, t, &first, &p);
    const int64_t nb = p / bs - first / bs + 1;
    const float* state0 = run_state_.data() + run_begin_[t] * state_floats;
    for (int kvh = 0; kvh < KVH; ++kvh) {
      // Runs [ra, rb] cover KV head kvh's pairs [kvh * nb, (kvh + 1) * nb).
      const int64_t ra = run_of(nb * KVH, kvh * nb, n_runs), rb = run_of(nb * KVH, (kvh + 1) * nb - 1, n_runs);
      if (ra == rb) continue;  // written whole by one run
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        float mx = -INFINITY;
        for (int64_t r = ra; r <= rb; ++r) mx = std::max(mx, state0[r * state_floats + h]);
        float* oh = out + (t * H + h) * D;
        std::fill_n(oh, D, 0.0f);
        float total = 0;
        for (int64_t r = ra; r <= rb; ++r) {
          const float* st = state0 + r * state_floats;
          const float w = std::exp(st[h] - mx);
          total += w * st[H + h];
          kernels_.scale_axpy(1.0f, w, st + 2 * H + h * D, oh, D);
        }
        const float inv = 1.0f / total;
        for (int d = 0; d < D; ++d) oh[d] *= inv;
      }
    }
  }
}

Status CpuBackend::Forward(const BatchDescriptor& b, std::span<float> logits) {
  KV_RETURN_IF_ERROR(Validate(b, logits.size()));
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  if (T == 0) return Status::Ok();
  PhaseClock clock(config_.profile);
  using Phase = CpuForwardProfile::Phase;
  const int Hd = cfg_.hidden_size, Q = cfg_.q_dim(), KVd = cfg_.kv_dim(), I = cfg_.intermediate_size, D = cfg_.head_dim;
  x_.resize(T * Hd);
  xn_.resize(T * Hd);
  q_.resize(T * Q);
  k_.resize(T * KVd);
  v_.resize(T * KVd);
  attn_.resize(T * Q);
  gate_.resize(T * I);
  up_.resize(T * I);
  xq_.resize(T * max_in_);
  xs_.resize(T * max_in_ / 32 + 1);
  thread_scratch_.resize(pool_.num_threads());
  for (auto& s : thread_scratch_) s.resize(std::max<size_t>(s.size(), std::max({max_in_, cfg_.hidden_size, config_.kv.block_size})));
  thread_part_.resize(pool_.num_threads());
  thread_spans_.resize(pool_.num_threads());
  // Enough for T tokens and for the logits' fewer rows (which may make a decode-sized chunk).
  const size_t part_floats = 2 * std::max(T * RowChunk(T), (kDotTile - 1) * kDecodeRowChunk);
  for (auto& s : thread_part_) s.resize(std::max(s.size(), part_floats));
  token_seq_.resize(T);
  RopeTable(b.positions);
  for (size_t s = 0; s < b.seqs.size(); ++s)
    for (int32_t j = 0; j < b.seqs[s].num_tokens; ++j) token_seq_[b.seqs[s].token_begin + j] = static_cast<int32_t>(s);

  const ModelWeights& W = model_.weights;
  const size_t emb_row = RowBytes(W.tok_embeddings.dtype, Hd);
  for (int64_t t = 0; t < T; ++t)
    DequantizeRow(W.tok_embeddings.dtype, static_cast<const uint8_t*>(W.tok_embeddings.data) + b.tokens[t] * emb_row, x_.data() + t * Hd, Hd);

  auto add_bias = [&](float* y, const Tensor& bias, int n) {
    if (!bias.present()) return;
    const float* bv = static_cast<const float*>(bias.data);
    for (int64_t t = 0; t < T; ++t)
      for (int i = 0; i < n; ++i) y[t * n + i] += bv[i];
  };
  auto head_norm = [&](float* y, const Tensor& w, int n_heads) {
    if (!w.present()) return;
    RmsNorm(y, static_cast<const float*>(w.data), y, T * n_heads, D);
  };

  for (int l = 0; l < cfg_.num_layers; ++l) {
    const LayerWeights& L = W.layers[l];
    RmsNorm(x_.data(), static_cast<const float*>(L.attn_norm.data), xn_.data(), T, Hd);
    clock.Lap(Phase::kEmbedAndNorms);
    MatMuls({{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}}, xn_.data(), T);
    clock.Lap(Phase::kQkv);
    add_bias(q_.data(), L.bq, Q);
    add_bias(k_.data(), L.bk, KVd);
    add_bias(v_.data(), L.bv, KVd);
    head_norm(q_.data(), L.q_norm, cfg_.num_heads);
    head_norm(k_.data(), L.k_norm, cfg_.num_kv_heads);
    clock.Lap(Phase::kEmbedAndNorms);
    Rope(q_.data(), T, cfg_.num_heads);
    Rope(k_.data(), T, cfg_.num_kv_heads);
    // Before attention: a chunk's tokens attend to each other (causally).
    WriteKv(b, l);
    clock.Lap(Phase::kRopeAndKvWrite);
    Attention(b, l, q_.data(), attn_.data());
    clock.Lap(Phase::kAttention);
    MatMuls({{&L.wo, x_.data(), Write::kAdd}}, attn_.data(), T);
    clock.Lap(Phase::kAttentionOut);

    RmsNorm(x_.data(), static_cast<const float*>(L.ffn_norm.data), xn_.data(), T, Hd);
    clock.Lap(Phase::kEmbedAndNorms);
    SwiGLU(L.w_gate, L.w_up, xn_.data(), T, gate_.data());
    clock.Lap(Phase::kMlpGateUp);
    MatMuls({{&L.w_down, x_.data(), Write::kAdd}}, gate_.data(), T);
    clock.Lap(Phase::kMlpDown);
  }

  // Logits only for the requested rows.
  const int64_t R = static_cast<int64_t>(b.logit_rows.size());
  if (R == 0) return Status::Ok();
  std::vector<float> rows(R * Hd);
  for (int64_t r = 0; r < R; ++r) std::memcpy(rows.data() + r * Hd, x_.data() + b.logit_rows[r] * Hd, Hd * sizeof(float));
  RmsNorm(rows.data(), static_cast<const float*>(W.output_norm.data), rows.data(), R, Hd);
  if (static_cast<int64_t>(xq_.size()) < R * max_in_) xq_.resize(R * max_in_);
  MatMul(W.output, rows.data(), R, logits.data());
  clock.Lap(Phase::kLogits);
  return Status::Ok();
}

void CpuBackend::WriteKv(const BatchDescriptor& b, int layer) {
  const int D = cfg_.head_dim, KVH = cfg_.num_kv_heads, bs = config_.kv.block_size;
  key_f16_.resize(D);
  for (int64_t t = 0; t < static_cast<int64_t>(b.tokens.size()); ++t) {
    const SequenceSlice& seq = b.seqs[token_seq_[t]];
    const int64_t p = seq.context_len + (t - seq.token_begin);
    const int32_t blk = b.block_tables[seq.block_table_begin + p / bs];
    for (int h = 0; h < KVH; ++h) {
      const float* kt = k_.data() + (t * KVH + h) * D;
      const float* vt = v_.data() + (t * KVH + h) * D;
      const size_t kcol = p % bs, vrow = static_cast<size_t>(p % bs) * D;
      if (f16_kv_) {
        auto* kpiece = reinterpret_cast<uint16_t*>(KHead(layer, h, blk));
        kernels_.to_f16(kt, key_f16_.data(), D);
        for (int i = 0; i < D; ++i) kpiece[kcol + static_cast<size_t>(i) * bs] = key_f16_[i];
        kernels_.to_f16(vt, reinterpret_cast<uint16_t*>(VHead(layer, h, blk)) + vrow, D);
      } else {
        auto* kpiece = reinterpret_cast<float*>(KHead(layer, h, blk));
        for (int i = 0; i < D; ++i) kpiece[kcol + static_cast<size_t>(i) * bs] = kt[i];
        std::memcpy(reinterpret_cast<float*>(VHead(layer, h, blk)) + vrow, vt, D * sizeof(float));
      }
    }
  }
}

void CpuBackend::CopyBlocks(std::span<const std::pair<int32_t, int32_t>> src_dst) {
  for (auto [src, dst] : src_dst) {
    KV_CHECK(src >= 0 && src < config_.kv.num_blocks && dst >= 0 && dst < config_.kv.num_blocks);
    for (int l = 0; l < cfg_.num_layers; ++l)
      for (int h = 0; h < cfg_.num_kv_heads; ++h) {
        std::memcpy(KHead(l, h, dst), KHead(l, h, src), head_bytes_);
        std::memcpy(VHead(l, h, dst), VHead(l, h, src), head_bytes_);
      }
  }
}

void CpuBackend::ReadBlock(int32_t block, void* dst) const {
  KV_CHECK(block >= 0 && block < config_.kv.num_blocks);
  auto* out = static_cast<uint8_t*>(dst);
  // Per layer its keys, then its values, each KV head's piece in turn (the layout of
  // swapped and offloaded blocks does not follow the pool's).
  for (int l = 0; l < cfg_.num_layers; ++l) {
    for (int h = 0; h < cfg_.num_kv_heads; ++h) {
      std::memcpy(out + h * head_bytes_, KHead(l, h, block), head_bytes_);
      std::memcpy(out + block_bytes_ + h * head_bytes_, VHead(l, h, block), head_bytes_);
    }
    out += 2 * block_bytes_;
  }
}

void CpuBackend::WriteBlock(int32_t block, const void* src) {
  KV_CHECK(block >= 0 && block < config_.kv.num_blocks);
  auto* in = static_cast<const uint8_t*>(src);
  for (int l = 0; l < cfg_.num_layers; ++l) {
    for (int h = 0; h < cfg_.num_kv_heads; ++h) {
      std::memcpy(KHead(l, h, block), in + h * head_bytes_, head_bytes_);
      std::memcpy(VHead(l, h, block), in + block_bytes_ + h * head_bytes_, head_bytes_);
    }
    in += 2 * block_bytes_;
  }
}

}  // namespace

// Every copied Q8_0 matrix is split, whatever its row length: with each chunk's scales
// in front of its values (model/quant.h) and its rows prefetched in software
// (kernels_avx512.cpp), kQ8_0Rows streams from memory at 92-120% of a plain read on
// rows of 576-14,336 values, where the file's Q8_0 blocks run at 77-94%
// (`matvec_bench --shapes`, docs/bench-decode.md eighth pass). The former layout (all of a row's scales, then all its
// values) missed on a long row's scale lines, so rows over 3,072 values had been left in
// blocks; splitting them too made TinyLlama's decode 1.02-1.04x faster.
void PrepareWeightsForCpu(Model& m, const DotKernels& kernels) {
  if (m.weight_region != nullptr && kernels.prefers_q8_0_rows) SplitQ8_0Rows(m);
}

StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const Model& model, const CpuBackendConfig& config) {
  if (config.kv.dtype != KvCacheDType::kF32 && config.kv.dtype != KvCacheDType::kF16)
    return Status::Unsupported(fmt::format("KV cache dtype {}: the CPU backend keeps its KV cache in f32 or f16",
                                           KvCacheDTypeName(config.kv.dtype)));
  if (config.kv.block_size < 1 || config.kv.block_size > 1024) return Status::InvalidArgument(fmt::format("block size {} out of range [1, 1024]", config.kv.block_size));
  if (config.kv.num_blocks < 1) return Status::InvalidArgument("the KV cache needs at least one block");
  if (config.num_threads < 1 || config.num_threads > 1024) return Status::InvalidArgument(fmt::format("threads {} out of range [1, 1024]", config.num_threads));
  const ModelConfig& c = model.config;
  if (static_cast<int>(model.rope_inv_freq.size()) != c.head_dim / 2) return Status::InvalidArgument("model has no RoPE frequencies");
  for (const Tensor* t : {&model.weights.tok_embeddings, &model.weights.output})
    if (t->cols() % GetDTypeInfo(t->dtype).block_elems != 0) return Status::Unsupported(t->name + ": row length not a block multiple");
  const size_t bytes = KvBlockBytes(c, config.kv.block_size, config.kv.dtype) * config.kv.num_blocks;
  if (bytes > (size_t{1} << 40)) return Status::ResourceExhausted(fmt::format("KV cache of {} bytes is too large", bytes));
  return std::unique_ptr<Backend>(new CpuBackend(model, config));
}

}  // namespace kvserve
