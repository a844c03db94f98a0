// Paged-KV consistency of the CPU forward pass on the real stories260K model:
// chunked prefill == one-shot prefill == token by token, two sequences in one batch ==
// each alone, and malformed batches are rejected instead of crashing.
#include "backend/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "model/model.h"
#include "model/quant.h"
#include "model/weight_memory.h"
#include "util/paths.h"

namespace kvserve {
namespace {

const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421};

// tokens[ctx, ctx + n) as one chunk of a sequence whose blocks (4 tokens each) are
// `table`, with logits for `logit_rows` of the chunk.
BatchDescriptor ChunkBatch(const std::vector<int32_t>& tokens, int ctx, int n, const std::vector<int32_t>& table,
                           std::vector<int32_t> logit_rows) {
  BatchDescriptor b;
  b.tokens.assign(tokens.begin() + ctx, tokens.begin() + ctx + n);
  for (int i = 0; i < n; ++i) b.positions.push_back(ctx + i);
  const int blocks = (ctx + n + 3) / 4;
  b.block_tables.assign(table.begin(), table.begin() + blocks);
  b.seqs = {SequenceSlice{0, n, ctx, 0, blocks}};
  b.logit_rows = std::move(logit_rows);
  return b;
}

// Every test of this fixture runs for each precision with an f32 and with an f16 KV cache.
class CpuBackendTest : public ::testing::TestWithParam<std::tuple<CpuBackendConfig::Precision, KvCacheDType>> {
 protected:
  void SetUp() override {
    auto m = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
    CreateBackend();
  }

  // (Re)creates backend_ over model_'s current weights.
  void CreateBackend() {
    CpuBackendConfig c;
    c.kv.num_blocks = 32;
    c.kv.block_size = 4;
    c.num_threads = 2;
    c.precision = std::get<0>(GetParam());
    c.kv.dtype = std::get<1>(GetParam());
    auto b = CreateCpuBackend(*model_, c);
    ASSERT_TRUE(b.ok());
    backend_ = std::move(b).value();
  }

  // Feeds `tokens` of one sequence in chunks; returns the logits of the last token.
  std::vector<float> RunChunks(const std::vector<int32_t>& tokens, const std::vector<int32_t>& table, const std::vector<int>& chunks) {
    int ctx = 0;
    std::vector<float> logits(model_->config.vocab_size);
    for (int n : chunks) {
      Status st = backend_->Forward(ChunkBatch(tokens, ctx, n, table, {n - 1}), logits);
      EXPECT_TRUE(st.ok()) << st.ToString();
      ctx += n;
    }
    return logits;
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_;
};

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

TEST_P(CpuBackendTest, ChunkedPrefillEqualsOneShotAndTokenByToken) {
  std::vector<int32_t> t1 = {0, 1, 2, 3}, t2 = {9, 4, 17, 30}, t3 = {31, 5, 6, 7};
  auto whole = RunChunks(kPrompt, t1, {13});
  auto chunked = RunChunks(kPrompt, t2, {5, 3, 4, 1});
  auto single = RunChunks(kPrompt, t3, std::vector<int>(13, 1));
  ExpectClose(whole, chunked);
  ExpectClose(whole, single);
}

TEST_P(CpuBackendTest, TwoSequencesInOneBatchEqualEachAlone) {
  std::vector<int32_t> other = {1, 410, 410, 300, 301};
  auto a = RunChunks(kPrompt, {0, 1, 2, 3}, {13});
  auto b = RunChunks(other, {4, 5}, {5});
  BatchDescriptor batch;
  batch.tokens = kPrompt;
  batch.tokens.insert(batch.tokens.end(), other.begin(), other.end());
  for (int i = 0; i < 13; ++i) batch.positions.push_back(i);
  for (int i = 0; i < 5; ++i) batch.positions.push_back(i);
  batch.block_tables = {10, 11, 12, 13, 20, 21};
  batch.seqs = {SequenceSlice{0, 13, 0, 0, 4}, SequenceSlice{13, 5, 0, 4, 2}};
  batch.logit_rows = {12, 17};
  std::vector<float> logits(2 * model_->config.vocab_size);
  ASSERT_TRUE(backend_->Forward(batch, logits).ok());
  ExpectClose(a, std::vector<float>(logits.begin(), logits.begin() + model_->config.vocab_size));
  ExpectClose(b, std::vector<float>(logits.begin() + model_->config.vocab_size, logits.end()));
}

TEST_P(CpuBackendTest, CopyAndSwapBlocksPreserveKv) {
  auto ref = RunChunks(kPrompt, {0, 1, 2, 3}, {12, 1});
  // Prefill 12 tokens into blocks 0..2, move them elsewhere by copy and by read/write.
  RunChunks(kPrompt, {0, 1, 2, 3}, {12});
  std::vector<std::pair<int32_t, int32_t>> copies = {{0, 20}, {1, 21}};
  backend_->CopyBlocks(copies);
  std::vector<uint8_t> buf(backend_->BlockBytes());
  backend_->ReadBlock(2, buf.data());
  backend_->WriteBlock(22, buf.data());
  BatchDescriptor b;
  b.tokens = {kPrompt[12]};
  b.positions = {12};
  b.block_tables = {20, 21, 22, 23};
  b.seqs = {SequenceSlice{0, 1, 12, 0, 4}};
  b.logit_rows = {0};
  std::vector<float> logits(model_->config.vocab_size);
  ASSERT_TRUE(backend_->Forward(b, logits).ok());
  ExpectClose(ref, logits);
}

TEST_P(CpuBackendTest, MalformedBatchesAreRejected) {
  std::vector<float> logits(model_->config.vocab_size);
  BatchDescriptor b;
  b.tokens = {1, 2};
  b.positions = {0, 1};
  b.block_tables = {99};  // out of range
  b.seqs = {SequenceSlice{0, 2, 0, 0, 1}};
  b.logit_rows = {1};
  EXPECT_EQ(backend_->Forward(b, logits).code(), Status::Code::kInvalidArgument);
  b.block_tables = {0};
  b.seqs = {SequenceSlice{0, 2, 7, 0, 1}};  // 9 tokens need 3 blocks
  EXPECT_EQ(backend_->Forward(b, logits).code(), Status::Code::kInvalidArgument);
  b.seqs = {SequenceSlice{0, 2, 0, 0, 1}};
  b.tokens = {1, 100000};
  EXPECT_EQ(backend_->Forward(b, logits).code(), Status::Code::kInvalidArgument);
  b.tokens = {1, 2};
  b.logit_rows = {5};
  EXPECT_EQ(backend_->Forward(b, logits).code(), Status::Code::kInvalidArgument);
  b.logit_rows = {0, 1};  // logits buffer holds one row
  EXPECT_EQ(backend_->Forward(b, logits).code(), Status::Code::kInvalidArgument);
}

// Weights copied into huge pages are the same bytes at other addresses: a backend
// created after the copy gives bit-identical logits.
TEST_P(CpuBackendTest, HugePageWeightsGiveIdenticalLogits) {
  const std::vector<int32_t> table = {3, 1, 4, 0};
  const std::vector<float> mapped = RunChunks(kPrompt, table, {13});
  ASSERT_TRUE(CopyWeightsToHugePages(*model_).ok());
  CreateBackend();
  const std::vector<float> huge = RunChunks(kPrompt, table, {13});
  ASSERT_EQ(mapped.size(), huge.size());
  for (size_t i = 0; i < mapped.size(); ++i) ASSERT_EQ(mapped[i], huge[i]) << i;
}

// stories260K's matrices as Q8_0 (those whose rows are whole blocks; the FFN down
// matrix, 172 wide, stays f32), as a Q8_0 GGUF would hold them; tied tensors stay tied.
void QuantizeMatricesToQ8_0(Model& m) {
  std::map<const void*, const void*> done;
  for (Tensor* t : m.weights.All()) {
    if (!t->present() || t->dtype != DType::kF32 || t->shape.size() != 2 || t->cols() % 32 != 0) continue;
    if (!done.count(t->data)) {
      const int64_t n = t->cols();
      std::vector<uint8_t> q(RowBytes(DType::kQ8_0, n) * t->rows());
      for (int64_t r = 0; r < t->rows(); ++r)
        QuantizeRow(DType::kQ8_0, static_cast<const float*>(t->data) + r * n, q.data() + r * RowBytes(DType::kQ8_0, n), n);
      m.owned_buffers.push_back(std::move(q));
      done[t->data] = m.owned_buffers.back().data();
    }
    t->data = done[t->data];
    t->dtype = DType::kQ8_0;
    t->nbytes = RowBytes(DType::kQ8_0, t->cols()) * t->rows();
  }
}

// Q8_0 weights re-laid out as kQ8_0Rows (PrepareWeightsForCpu with a set that prefers
// it) give the logits the Q8_0 blocks give, in prefill (tiles) and decode, for every
// kernel set: the same values, only the float summation order differs.
TEST(CpuBackendQ8_0Rows, SplitWeightsGiveTheLogitsOfQ8_0Blocks) {
  std::unique_ptr<Model> models[2];
  for (auto& m : models) {
    auto loaded = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    m = std::move(loaded).value();
    QuantizeMatricesToQ8_0(*m);
    ASSERT_TRUE(CopyWeightsToHugePages(*m).ok());
  }
  DotKernels splitting = BestDotKernels();
  splitting.prefers_q8_0_rows = true;
  PrepareWeightsForCpu(*models[1], splitting);
  ASSERT_EQ(models[0]->weights.layers[0].wq.dtype, DType::kQ8_0);
  ASSERT_EQ(models[1]->weights.layers[0].wq.dtype, DType::kQ8_0Rows);
  ASSERT_EQ(models[1]->weights.layers[0].w_down.dtype, DType::kF32);  // 172 wide: not quantized
  // The embedding lookup reads split rows too; a tied output matrix is the same split copy.
  const ModelWeights& split = models[1]->weights;
  EXPECT_EQ(split.tok_embeddings.dtype, DType::kQ8_0Rows);
  EXPECT_EQ(split.output.dtype, DType::kQ8_0Rows);
  EXPECT_EQ(split.output.data == split.tok_embeddings.data, models[0]->weights.output.data == models[0]->weights.tok_embeddings.data);

  const std::vector<int32_t> table = {3, 1, 4, 0, 2};
  std::vector<float> logits[2];
  for (int i = 0; i < 2; ++i) {
    CpuBackendConfig c;
    c.kv.num_blocks = 8;
    c.kv.block_size = 4;
    c.num_threads = 2;
    auto backend = CreateCpuBackend(*models[i], c);
    ASSERT_TRUE(backend.ok());
    std::vector<float> out(models[i]->config.vocab_size);
    // 13 prompt tokens in one chunk (tiles), then three decode steps (one row at a time).
    ASSERT_TRUE((*backend)->Forward(ChunkBatch(kPrompt, 0, 10, table, {9}), out).ok());
    logits[i].insert(logits[i].end(), out.begin(), out.end());
    for (int ctx = 10; ctx < 13; ++ctx) {
      ASSERT_TRUE((*backend)->Forward(ChunkBatch(kPrompt, ctx, 1, table, {0}), out).ok());
      logits[i].insert(logits[i].end(), out.begin(), out.end());
    }
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  for (size_t i = 0; i < logits[0].size(); ++i) ASSERT_NEAR(logits[0][i], logits[1][i], 1e-3 * (1 + std::fabs(logits[0][i]))) << i;
}

// A profile changes nothing but itself: the same logits, one pass counted per Forward,
// and time in every phase a decode step has.
TEST(CpuBackendProfile, CountsPassesAndPhasesWithoutChangingLogits) {
  auto loaded = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Model& model = **loaded;
  CpuForwardProfile profile;
  std::vector<float> plain, profiled;
  for (CpuForwardProfile* p : {static_cast<CpuForwardProfile*>(nullptr), &profile}) {
    CpuBackendConfig c;
    c.kv.num_blocks = 8;
    c.kv.block_size = 4;
    c.profile = p;
    auto backend = CreateCpuBackend(model, c);
    ASSERT_TRUE(backend.ok());
    std::vector<float> logits(model.config.vocab_size);
    int ctx = 0;
    for (int n : {6, 1, 1}) {
      ASSERT_TRUE((*backend)->Forward(ChunkBatch(kPrompt, ctx, n, {0, 1}, {n - 1}), logits).ok());
      ctx += n;
    }
    (p ? profiled : plain) = logits;
  }
  EXPECT_EQ(plain, profiled);
  EXPECT_EQ(profile.passes, 3);
  for (int i = 0; i < CpuForwardProfile::kNumPhases; ++i) {
    EXPECT_GT(profile.seconds[i], 0.0) << CpuForwardProfile::Name(i);
    EXPECT_STRNE(CpuForwardProfile::Name(i), "?");
  }
}

// The fast path cuts a token's (KV head, block) pairs into runs by thread count, and
// walks a sliding window from a position inside a block: the logits must match the
// reference path's for every split (stories260K: 8 query heads over 4 KV heads). On 2
// threads a short context (13 tokens) gives each run two whole KV heads; 3 and 5
// threads cut inside KV heads, whose runs' softmax states are merged, as does the long
// case (decode steps after 136 tokens, 35 blocks: two runs per thread).
TEST(CpuBackendAttention, FastMatchesReferenceForAnyThreadCountAndWindow) {
  auto loaded = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  Model& model = **loaded;
  std::vector<int32_t> long_prompt;
  while (long_prompt.size() < 138) long_prompt.insert(long_prompt.end(), kPrompt.begin() + 1, kPrompt.end());
  long_prompt[0] = 1;
  std::vector<int32_t> long_table(40);
  for (int i = 0; i < 40; ++i) long_table[i] = (i * 17 + 3) % 40;  // scattered, as a pool hands them out
  struct Case {
    const std::vector<int32_t>* tokens;
    std::vector<int> chunks;
    std::vector<int32_t> table;
  };
  // Chunks of 6, 1 and 6 tokens: prefill, a decode step and a prefill over 13 tokens;
  // then a 136-token prefill and two decode steps.
  const std::vector<Case> cases = {{&kPrompt, {6, 1, 6}, {7, 2, 5, 0, 3}}, {&long_prompt, {136, 1, 1}, long_table}};
  auto run = [&](const Case& cs, CpuBackendConfig::Precision precision, int threads, KvCacheDType kv) {
    CpuBackendConfig c;
    c.kv.dtype = kv;
    c.kv.num_blocks = 40;
    c.kv.block_size = 4;
    c.num_threads = threads;
    c.precision = precision;
    auto backend = CreateCpuBackend(model, c);
    EXPECT_TRUE(backend.ok());
    std::vector<float> logits(2 * model.config.vocab_size), all;
    int ctx = 0;
    for (int n : cs.chunks) {
      const std::vector<int32_t> rows = n == 1 ? std::vector<int32_t>{0} : std::vector<int32_t>{0, n - 1};
      EXPECT_TRUE((*backend)->Forward(ChunkBatch(*cs.tokens, ctx, n, cs.table, rows), logits).ok());
      all.insert(all.end(), logits.begin(), logits.begin() + rows.size() * model.config.vocab_size);
      ctx += n;
    }
    return all;
  };
  // In f16 both paths read the same rounded keys and values.
  for (const Case& cs : cases)
    for (KvCacheDType kv : {KvCacheDType::kF32, KvCacheDType::kF16})
      for (int window : {0, 5}) {
        model.config.sliding_window = window;
        const std::vector<float> want = run(cs, CpuBackendConfig::Precision::kReference, 1, kv);
        for (int threads : {1, 2, 3, 5}) {
          const std::vector<float> got = run(cs, CpuBackendConfig::Precision::kFast, threads, kv);
          ASSERT_EQ(got.size(), want.size());
          double worst = 0;
          for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
          EXPECT_LT(worst, 1e-4) << cs.tokens->size() << "-token case, window " << window << ", " << threads << " threads, "
                                 << KvCacheDTypeName(kv) << " KV";
        }
      }
}

// An f16 cache holds half the bytes of an f32 one; the dtypes it has no kernels for are
// refused by name, not silently stored as something else.
TEST(CpuBackendKvDType, F16HalvesTheBlockAndOtherDtypesAreRefused) {
  auto loaded = LoadModel(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto bytes = [&](KvCacheDType kv) -> StatusOr<size_t> {
    CpuBackendConfig c;
    c.kv.dtype = kv;
    c.kv.num_blocks = 4;
    c.kv.block_size = 16;
    KV_ASSIGN_OR_RETURN(auto backend, CreateCpuBackend(**loaded, c));
    EXPECT_EQ(backend->BlockBytes(), KvBlockBytes((*loaded)->config, 16, kv));
    return backend->BlockBytes();
  };
  ASSERT_TRUE(bytes(KvCacheDType::kF32).ok());
  ASSERT_TRUE(bytes(KvCacheDType::kF16).ok());
  EXPECT_EQ(*bytes(KvCacheDType::kF16) * 2, *bytes(KvCacheDType::kF32));
  for (KvCacheDType kv : {KvCacheDType::kBF16, KvCacheDType::kFP8, KvCacheDType::kInt8, KvCacheDType::kInt4}) {
    auto r = bytes(kv);
    ASSERT_FALSE(r.ok()) << KvCacheDTypeName(kv);
    EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
    EXPECT_NE(r.status().message().find(KvCacheDTypeName(kv)), std::string::npos) << r.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndKvDTypes, CpuBackendTest,
                         ::testing::Combine(::testing::Values(CpuBackendConfig::Precision::kReference,
                                                              CpuBackendConfig::Precision::kFast),
                                            ::testing::Values(KvCacheDType::kF32, KvCacheDType::kF16)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == CpuBackendConfig::Precision::kFast ? "fast" : "reference") +
                                  "_kv_" + KvCacheDTypeName(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace kvserve
