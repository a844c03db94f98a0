// GGUF reader: the real stories260K.gguf and tokenizer vocab files, hand-built files
// covering every value type, and damaged files (truncated, flipped, bogus counts/offsets).
#include "model/gguf_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "model/quant.h"
#include "util/paths.h"

namespace kvserve {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Little-endian GGUF byte writer for hand-made (and deliberately broken) files.
class Bytes {
 public:
  template <typename T>
  Bytes& Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b_.insert(b_.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& Header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    return Put<uint32_t>(0x46554747u).Put(version).Put(n_tensors).Put(n_kv);
  }
  Bytes& Key(const std::string& k, GgufType t) { return Str(k).Put(static_cast<uint32_t>(t)); }
  Bytes& TensorInfo(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Str(name).Put<uint32_t>(ne.size());
    for (uint64_t x : ne) Put(x);
    return Put(type).Put(offset);
  }
  Bytes& PadTo(size_t alignment) {
    while (b_.size() % alignment) b_.push_back(0);
    return *this;
  }
  Bytes& Raw(const void* p, size_t n) {
    b_.insert(b_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return *this;
  }
  std::vector<uint8_t>& vec() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

StatusOr<std::unique_ptr<GgufFile>> Parse(const std::vector<uint8_t>& b, const std::string& name = "test.gguf") {
  return GgufFile::FromBuffer(b.data(), b.size(), name);
}

TEST(GgufReader, Stories260K) {
  const std::string path = SharedPath("models/stories260K/stories260K.gguf");
  auto g = GgufFile::Open(path);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const GgufFile& f = **g;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata().size(), 19u);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(*f.GetInt("llama.block_count"), 5);
  EXPECT_EQ(*f.GetInt("llama.feed_forward_length"), 172);
  EXPECT_EQ(*f.GetInt("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(*f.GetInt("llama.context_length"), 2048);
  EXPECT_NEAR(*f.GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.seperator_token_id"), 4294967295);  // uint32 kept unsigned
  auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[2], "</s>");
  auto types = f.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  EXPECT_EQ((*types)[0], 2);
  EXPECT_EQ((*types)[1], 3);
  EXPECT_EQ(f.GetFloatArray("tokenizer.ggml.scores")->size(), 512u);

  ASSERT_EQ(f.tensors().size(), 48u);
  const Tensor* emb = f.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kF32);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));  // ne = [64, 512] reversed
  EXPECT_EQ(emb->nbytes, 512u * 64 * 4);
  const Tensor* down = f.FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(f.FindTensor("blk.4.ffn_norm.weight")->shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(f.FindTensor("nope"), nullptr);

  // Data pointers land where the file says: data section at align(14152, 32) = 14176.
  const std::vector<uint8_t> raw = ReadAll(path);
  EXPECT_EQ(std::memcmp(emb->data, raw.data() + 14176, emb->nbytes), 0);
  EXPECT_EQ(std::memcmp(down->data, raw.data() + 14176 + 355840, down->nbytes), 0);
  const Tensor* last = f.FindTensor("blk.4.ffn_norm.weight");
  EXPECT_EQ(std::memcmp(last->data, raw.data() + 14176 + 1170944, last->nbytes), 0);
  EXPECT_EQ(14176 + 1170944 + last->nbytes, raw.size());

  // FromBuffer sees the same thing.
  auto b = Parse(raw, "buffer");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->tensors().size(), 48u);
}

TEST(GgufReader, TypedGetterErrors) {
  auto g = GgufFile::Open(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(g.ok());
  auto missing = (*g)->GetInt("llama.nope");
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("llama.nope"));
  auto wrong = (*g)->GetInt("general.architecture");
  EXPECT_EQ(wrong.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("general.architecture"));
  EXPECT_FALSE((*g)->GetString("llama.block_count").ok());
  EXPECT_FALSE((*g)->GetStringArray("tokenizer.ggml.scores").ok());
  EXPECT_FALSE((*g)->GetFloatArray("tokenizer.ggml.tokens").ok());
  EXPECT_EQ(*(*g)->GetIntOr("llama.nope", 7), 7);
  EXPECT_FALSE((*g)->GetIntOr("general.name", 7).ok());  // present with the wrong type is still an error
  EXPECT_EQ(*(*g)->GetStringOr("general.nope", "x"), "x");
  EXPECT_EQ(*(*g)->GetFloatOr("llama.block_count", 0), 5.0);  // integers widen to float
}

TEST(GgufReader, TokenizerVocabFiles) {
  for (const char* name : {"llama-spm", "gpt-2", "phi-3", "falcon", "deepseek-llm"}) {
    const std::string path = SharedPath(std::string("tokenizers/vectors/ggml-vocab-") + name + ".gguf");
    auto g = GgufFile::Open(path);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    auto tokens = (*g)->GetStringArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << name;
    EXPECT_GT(tokens->size(), 1000u) << name;
    EXPECT_TRUE((*g)->GetString("tokenizer.ggml.model").ok()) << name;
  }
}

// A small file with every metadata type, nested arrays, a custom alignment and three tensors.
std::vector<uint8_t> BuildAllTypes(uint32_t version, uint32_t alignment = 64) {
  Bytes b;
  b.Header(version, 3, 17);
  b.Key("u8", GgufType::kUint8).Put<uint8_t>(200);
  b.Key("i8", GgufType::kInt8).Put<int8_t>(-100);
  b.Key("u16", GgufType::kUint16).Put<uint16_t>(60000);
  b.Key("i16", GgufType::kInt16).Put<int16_t>(-30000);
  b.Key("u32", GgufType::kUint32).Put<uint32_t>(4000000000u);
  b.Key("i32", GgufType::kInt32).Put<int32_t>(-2000000000);
  b.Key("u64", GgufType::kUint64).Put<uint64_t>(uint64_t{1} << 40);
  b.Key("i64", GgufType::kInt64).Put<int64_t>(-(int64_t{1} << 40));
  b.Key("f32", GgufType::kFloat32).Put<float>(1.5f);
  b.Key("f64", GgufType::kFloat64).Put<double>(-2.25);
  b.Key("bool", GgufType::kBool).Put<uint8_t>(1);
  b.Key("str", GgufType::kString).Str("héllo");
  b.Key("arr.i16", GgufType::kArray).Put<uint32_t>(3).Put<uint64_t>(3).Put<int16_t>(-1).Put<int16_t>(0).Put<int16_t>(1);
  b.Key("arr.str", GgufType::kArray).Put<uint32_t>(8).Put<uint64_t>(2).Str("a").Str("");
  b.Key("arr.f64", GgufType::kArray).Put<uint32_t>(12).Put<uint64_t>(2).Put<double>(0.5).Put<double>(-4);
  // [[1, 2], [3]] as uint8 arrays inside an array.
  b.Key("arr.nested", GgufType::kArray).Put<uint32_t>(9).Put<uint64_t>(2);
  b.Put<uint32_t>(0).Put<uint64_t>(2).Put<uint8_t>(1).Put<uint8_t>(2);
  b.Put<uint32_t>(0).Put<uint64_t>(1).Put<uint8_t>(3);
  b.Key("general.alignment", GgufType::kUint32).Put<uint32_t>(alignment);
  // f32 {3, 2} (ne = [2, 3]), q8_0 {2, 32} (ne = [32, 2]) and bf16 {4} tensors.
  b.TensorInfo("a", {2, 3}, 0, 0);
  b.TensorInfo("q", {32, 2}, 8, alignment);
  b.TensorInfo("h", {4}, 30, 3 * alignment);  // q (68 bytes) spans two alignment units
  b.PadTo(alignment);
  const float a[6] = {1, 2, 3, 4, 5, 6};
  b.Raw(a, sizeof(a)).PadTo(alignment);
  BlockQ8_0 q[2];
  for (int k = 0; k < 2; ++k) {
    q[k].d = FloatToFp16(k + 1.0f);
    for (int j = 0; j < 32; ++j) q[k].qs[j] = static_cast<int8_t>(j - 16);
  }
  b.Raw(q, sizeof(q)).PadTo(alignment);
  const uint16_t h[4] = {FloatToBf16(1), FloatToBf16(-1), FloatToBf16(0.5f), FloatToBf16(8)};
  b.Raw(h, sizeof(h));
  return b.vec();
}

TEST(GgufReader, AllValueTypes) {
  for (uint32_t version : {2u, 3u}) {
    const std::vector<uint8_t> buf = BuildAllTypes(version);
    auto g = Parse(buf);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    const GgufFile& f = **g;
    EXPECT_EQ(f.version(), version);
    EXPECT_EQ(f.alignment(), 64u);
    EXPECT_EQ(*f.GetInt("u8"), 200);
    EXPECT_EQ(*f.GetInt("i8"), -100);
    EXPECT_EQ(*f.GetInt("u16"), 60000);
    EXPECT_EQ(*f.GetInt("i16"), -30000);
    EXPECT_EQ(*f.GetInt("u32"), 4000000000);
    EXPECT_EQ(*f.GetInt("i32"), -2000000000);
    EXPECT_EQ(*f.GetInt("u64"), int64_t{1} << 40);
    EXPECT_EQ(*f.GetInt("i64"), -(int64_t{1} << 40));
    EXPECT_EQ(*f.GetFloat("f32"), 1.5);
    EXPECT_EQ(*f.GetFloat("f64"), -2.25);
    EXPECT_EQ(*f.GetBool("bool"), true);
    EXPECT_EQ(*f.GetString("str"), "héllo");
    EXPECT_EQ(*f.GetIntArray("arr.i16"), (std::vector<int64_t>{-1, 0, 1}));
    EXPECT_EQ(*f.GetStringArray("arr.str"), (std::vector<std::string>{"a", ""}));
    EXPECT_EQ(*f.GetFloatArray("arr.f64"), (std::vector<float>{0.5f, -4.0f}));
    const GgufValue* nested = f.Find("arr.nested");
    ASSERT_NE(nested, nullptr);
    ASSERT_EQ(nested->elem_type, GgufType::kArray);
    ASSERT_EQ(nested->array.size(), 2u);
    ASSERT_EQ(nested->array[0].array.size(), 2u);
    EXPECT_EQ(nested->array[0].array[1].i, 2);
    EXPECT_EQ(nested->array[1].array[0].i, 3);
    EXPECT_FALSE(f.GetIntArray("arr.nested").ok());

    ASSERT_EQ(f.tensors().size(), 3u);
    const Tensor* a = f.FindTensor("a");
    EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(static_cast<const float*>(a->data)[5], 6.0f);
    EXPECT_EQ((static_cast<const uint8_t*>(a->data) - buf.data()) % 64, 0);  // data section aligned to general.alignment
    const Tensor* q = f.FindTensor("q");
    EXPECT_EQ(q->dtype, DType::kQ8_0);
    EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 32}));
    EXPECT_EQ(q->nbytes, 68u);
    float row[32];
    DequantizeRow(q->dtype, static_cast<const uint8_t*>(q->data) + 34, row, 32);
    EXPECT_EQ(row[0], -32.0f);  // d = 2, q = -16
    const Tensor* h = f.FindTensor("h");
    EXPECT_EQ(h->dtype, DType::kBF16);
    EXPECT_EQ(Bf16ToFloat(static_cast<const uint16_t*>(h->data)[3]), 8.0f);
    EXPECT_EQ(static_cast<const uint8_t*>(h->data) + h->nbytes, buf.data() + buf.size());
  }
}

void ExpectError(const std::vector<uint8_t>& buf, Status::Code code, const std::string& substr) {
  auto g = Parse(buf, "bad.gguf");
  ASSERT_FALSE(g.ok()) << "expected an error containing '" << substr << "'";
  EXPECT_EQ(g.status().code(), code) << g.status().ToString();
  EXPECT_THAT(g.status().message(), HasSubstr("bad.gguf"));
  EXPECT_THAT(g.status().message(), HasSubstr(substr));
}

TEST(GgufReader, HeaderErrors) {
  ExpectError({}, Status::Code::kCorrupt, "bad magic");
  ExpectError({'G', 'G', 'U', 'X', 3, 0, 0, 0}, Status::Code::kCorrupt, "bad magic");
  std::vector<uint8_t> v1 = Bytes().Header(1, 0, 0).vec();
  ExpectError(v1, Status::Code::kUnsupported, "version 1");
  ExpectError(Bytes().Header(4, 0, 0).vec(), Status::Code::kUnsupported, "version 4");
  std::vector<uint8_t> trunc = Bytes().Header(3, 0, 0).vec();
  trunc.resize(12);
  ExpectError(trunc, Status::Code::kCorrupt, "truncated header");
  ExpectError(Bytes().Header(3, 0, uint64_t{1} << 60).vec(), Status::Code::kCorrupt, "more than the file can hold");
  ExpectError(Bytes().Header(3, ~uint64_t{0}, 0).vec(), Status::Code::kCorrupt, "more than the file can hold");
  // An empty but valid file: no tensors, no metadata.
  EXPECT_TRUE(Parse(Bytes().Header(3, 0, 0).vec()).ok());
}

TEST(GgufReader, MetadataErrors) {
  {
    Bytes b;
    b.Header(3, 0, 1).Put<uint64_t>(uint64_t{1} << 50);  // key length
    ExpectError(b.vec(), Status::Code::kCorrupt, "key runs past the end");
  }
  {
    Bytes b;
    b.Header(3, 0, 1).Key("k", static_cast<GgufType>(13)).Put<uint32_t>(0);
    ExpectError(b.vec(), Status::Code::kCorrupt, "unknown value type 13");
  }
  {
    Bytes b;
    b.Header(3, 0, 1).Key("big.array", GgufType::kArray).Put<uint32_t>(4).Put<uint64_t>(uint64_t{1} << 61);
    b.vec().resize(b.vec().size() + 64);
    ExpectError(b.vec(), Status::Code::kCorrupt, "'big.array': array of 2305843009213693952 elements does not fit");
  }
  {
    Bytes b;  // array of strings whose count fits only if strings were empty... and they are not there
    b.Header(3, 0, 1).Key("strs", GgufType::kArray).Put<uint32_t>(8).Put<uint64_t>(3).Str("x");
    b.vec().resize(b.vec().size() + 8);
    ExpectError(b.vec(), Status::Code::kCorrupt, "'strs'");
  }
  {
    Bytes b;
    b.Header(3, 0, 1).Key("s", GgufType::kString).Put<uint64_t>(100).Put<uint32_t>(0);
    ExpectError(b.vec(), Status::Code::kCorrupt, "'s': value runs past the end");
  }
  {
    Bytes b;
    b.Header(3, 0, 1).Key("bad.elem", GgufType::kArray).Put<uint32_t>(77).Put<uint64_t>(1);
    ExpectError(b.vec(), Status::Code::kCorrupt, "unknown array element type 77");
  }
  {
    Bytes b;  // arrays nested deeper than any real file
    b.Header(3, 0, 1).Key("deep", GgufType::kArray);
    for (int d = 0; d < 10; ++d) b.Put<uint32_t>(9).Put<uint64_t>(1);
    b.vec().resize(b.vec().size() + 64);
    ExpectError(b.vec(), Status::Code::kCorrupt, "nested too deeply");
  }
  {
    Bytes b;
    b.Header(3, 0, 2).Key("k", GgufType::kUint8).Put<uint8_t>(1).Key("k", GgufType::kUint8).Put<uint8_t>(2);
    ExpectError(b.vec(), Status::Code::kCorrupt, "metadata 'k' appears twice");
  }
  {
    Bytes b;
    b.Header(3, 0, 1).Key("general.alignment", GgufType::kUint32).Put<uint32_t>(48);
    ExpectError(b.vec(), Status::Code::kCorrupt, "general.alignment");
  }
  {
    Bytes b;
    b.Header(3, 0, 1).Key("general.alignment", GgufType::kString).Str("32");
    ExpectError(b.vec(), Status::Code::kCorrupt, "general.alignment");
  }
}

TEST(GgufReader, TensorInfoErrors) {
  auto one_tensor = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
    Bytes b;
    b.Header(3, 1, 0).TensorInfo("blk.0.attn_q.weight", ne, type, offset).PadTo(32);
    b.vec().resize(b.vec().size() + data_bytes);
    return b.vec();
  };
  EXPECT_TRUE(Parse(one_tensor({4, 2}, 0, 0, 32)).ok());
  ExpectError(one_tensor({4, 2}, 0, 0, 31), Status::Code::kCorrupt, "'blk.0.attn_q.weight': data [");
  ExpectError(one_tensor({4, 2}, 0, 32, 32), Status::Code::kCorrupt, "beyond the end of the file");
  ExpectError(one_tensor({4, 2}, 0, ~uint64_t{0} - 31, 32), Status::Code::kCorrupt, "beyond the end of the file");
  ExpectError(one_tensor({4, 2}, 0, 4, 64), Status::Code::kCorrupt, "not aligned to 32");
  ExpectError(one_tensor({4, 2}, 3, 0, 64), Status::Code::kUnsupported, "'blk.0.attn_q.weight': tensor type 3 is not supported");
  ExpectError(one_tensor({4, 2}, 1000, 0, 64), Status::Code::kUnsupported, "tensor type 1000");
  ExpectError(one_tensor({16, 2}, 8, 0, 64), Status::Code::kCorrupt, "row length 16 is not a multiple of the q8_0 block size 32");
  ExpectError(one_tensor({4, 0}, 0, 0, 64), Status::Code::kCorrupt, "dimension 1 = 0 is out of range");
  ExpectError(one_tensor({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 64), Status::Code::kCorrupt, "out of range");
  ExpectError(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64), Status::Code::kCorrupt, "5 dimensions");
  ExpectError(one_tensor({}, 0, 0, 64), Status::Code::kCorrupt, "0 dimensions");
  {
    Bytes b;
    b.Header(3, 2, 0).TensorInfo("x", {8}, 0, 0).TensorInfo("x", {8}, 0, 32).PadTo(32);
    b.vec().resize(b.vec().size() + 64);
    ExpectError(b.vec(), Status::Code::kCorrupt, "'x': duplicate tensor name");
  }
  {
    Bytes b;
    b.Header(3, 1, 0).Str("t").Put<uint32_t>(2).Put<uint64_t>(4);  // cut inside the dims
    ExpectError(b.vec(), Status::Code::kCorrupt, "'t': truncated tensor info");
  }
}

// Every prefix of the real file's header, and prefixes cut inside the data, must give an error.
TEST(GgufReader, TruncatedRealFileAlwaysFailsCleanly) {
  const std::vector<uint8_t> raw = ReadAll(SharedPath("models/stories260K/stories260K.gguf"));
  ASSERT_EQ(raw.size(), 1185376u);
  std::vector<size_t> cuts;
  for (size_t n = 0; n <= 14200; ++n) cuts.push_back(n);
  for (size_t n = 14200; n < raw.size(); n += 4093) cuts.push_back(n);
  cuts.push_back(raw.size() - 1);
  for (size_t n : cuts) {
    // A heap copy of exactly n bytes, so ASan catches any read past the cut.
    std::vector<uint8_t> part(raw.begin(), raw.begin() + n);
    auto g = Parse(part, "cut.gguf");
    ASSERT_FALSE(g.ok()) << "prefix of " << n << " bytes parsed";
    ASSERT_THAT(g.status().message(), HasSubstr("cut.gguf")) << n;
  }
}

// Corrupting any header byte must give either a clean parse or a clean error.
TEST(GgufReader, FlippedHeaderBytesNeverCrash) {
  std::vector<uint8_t> raw = ReadAll(SharedPath("models/stories260K/stories260K.gguf"));
  int failures = 0;
  for (size_t pos = 0; pos < 14176; ++pos) {
    for (uint8_t x : {uint8_t{0xFF}, uint8_t{0x80}, uint8_t{0x01}}) {
      const uint8_t saved = raw[pos];
      raw[pos] ^= x;
      auto g = Parse(raw, "flip.gguf");
      if (!g.ok()) {
        ++failures;
        ASSERT_THAT(g.status().message(), HasSubstr("flip.gguf")) << pos;
      } else {
        for (const Tensor& t : (*g)->tensors()) {  // whatever parsed lies inside the buffer
          ASSERT_GE(static_cast<const uint8_t*>(t.data), raw.data());
          ASSERT_LE(static_cast<const uint8_t*>(t.data) + t.nbytes, raw.data() + raw.size());
        }
      }
      raw[pos] = saved;
    }
  }
  EXPECT_GT(failures, 1000);  // most header damage is detected
}

TEST(GgufReader, OpenMissingFile) {
  auto g = GgufFile::Open("/nonexistent/model.gguf");
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().message(), HasSubstr("/nonexistent/model.gguf"));
}

}  // namespace
}  // namespace kvserve
