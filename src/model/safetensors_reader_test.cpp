// Safetensors reader: the real stories260K / prose-25m files, hand-built buffers, sharded
// directories, and damaged inputs (truncation, bad offsets, bad JSON, unsupported dtypes).
#include "model/safetensors_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/quant.h"
#include "util/paths.h"

namespace kvserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const fs::path& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), b.size());
}

std::vector<uint8_t> Build(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8);
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  b.insert(b.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i));
  return b;
}

StatusOr<std::unique_ptr<SafetensorsFile>> Parse(const std::vector<uint8_t>& b) {
  return SafetensorsFile::FromBuffer(b.data(), b.size(), "bad.safetensors");
}

void ExpectError(const std::vector<uint8_t>& b, Status::Code code, const std::string& substr) {
  auto f = Parse(b);
  ASSERT_FALSE(f.ok()) << "expected an error containing '" << substr << "'";
  EXPECT_EQ(f.status().code(), code) << f.status().ToString();
  EXPECT_THAT(f.status().message(), HasSubstr("bad.safetensors"));
  EXPECT_THAT(f.status().message(), HasSubstr(substr));
}

TEST(Safetensors, Stories260K) {
  const std::string path = SharedPath("models/stories260K/hf/model.safetensors");
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->tensors().size(), 48u);
  const Tensor* emb = (*f)->FindTensor("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kF32);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(emb->nbytes, 131072u);
  const std::vector<uint8_t> raw = ReadAll(path);
  const size_t base = 8 + 5328;  // header length 5328
  EXPECT_EQ(std::memcmp(emb->data, raw.data() + base, emb->nbytes), 0);
  const Tensor* q = (*f)->FindTensor("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(std::memcmp(q->data, raw.data() + base + 262912, q->nbytes), 0);
  EXPECT_EQ((*f)->FindTensor("__metadata__"), nullptr);
}

TEST(Safetensors, Prose25mBf16WithMetadata) {
  auto set = SafetensorsSet::OpenDir(SharedPath("models/prose-25m/hf"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ((*set)->AllTensors().size(), 74u);  // 75 header entries minus __metadata__
  const Tensor* emb = (*set)->FindTensor("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kBF16);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{32000, 384}));
  EXPECT_EQ(emb->nbytes, 32000u * 384 * 2);
  EXPECT_EQ((*set)->FindTensor("lm_head.weight"), nullptr);
  const Tensor* down = (*set)->FindTensor("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{384, 1024}));
}

TEST(Safetensors, HandBuiltDtypes) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"c":{"dtype":"BF16","shape":[],"data_offsets":[22,24]}})";
  auto b = Build(header, 24);
  auto f = Parse(b);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->tensors().size(), 3u);
  EXPECT_EQ((*f)->FindTensor("b")->dtype, DType::kF16);
  EXPECT_EQ((*f)->FindTensor("b")->nbytes, 6u);
  EXPECT_EQ((*f)->FindTensor("c")->shape.size(), 0u);  // a scalar
  EXPECT_EQ(static_cast<const uint8_t*>((*f)->FindTensor("c")->data)[0], 22);
}

TEST(Safetensors, Errors) {
  ExpectError({1, 2, 3}, Status::Code::kCorrupt, "too short");
  ExpectError({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, '{', '}'}, Status::Code::kCorrupt, "header length 18446744073709551615 exceeds");
  ExpectError(Build("[1,2]", 0), Status::Code::kCorrupt, "not a JSON object");
  ExpectError(Build("{\"a\":", 0), Status::Code::kCorrupt, "not a JSON object");
  ExpectError(Build(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8), Status::Code::kUnsupported,
              "'a': dtype I64 is not supported");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 15), Status::Code::kCorrupt,
              "'a': data_offsets [0, 16) outside the data section (15 bytes)");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", 16), Status::Code::kCorrupt, "data_offsets [8, 4)");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", 16), Status::Code::kCorrupt,
              "'a': 12 bytes of data for 4 elements of F32");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", 16), Status::Code::kCorrupt, "non-negative");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[-1,16]}})", 16), Status::Code::kCorrupt, "malformed");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[4]}})", 16), Status::Code::kCorrupt, "'a': entry needs dtype, shape and data_offsets");
  ExpectError(Build(R"({"a":[]})", 16), Status::Code::kCorrupt, "'a'");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}})", 16),
              Status::Code::kCorrupt, "shape too large");
  ExpectError(Build(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}})", 4), Status::Code::kCorrupt, "more than 4");
}

TEST(Safetensors, TruncatedRealFileAlwaysFailsCleanly) {
  const std::vector<uint8_t> raw = ReadAll(SharedPath("models/stories260K/hf/model.safetensors"));
  std::vector<size_t> cuts;
  for (size_t n = 0; n < 5400; n += 3) cuts.push_back(n);
  for (size_t n = 5400; n < raw.size(); n += 2039) cuts.push_back(n);
  cuts.push_back(raw.size() - 1);
  for (size_t n : cuts) {
    std::vector<uint8_t> part(raw.begin(), raw.begin() + n);
    auto f = Parse(part);
    ASSERT_FALSE(f.ok()) << n;
    ASSERT_THAT(f.status().message(), HasSubstr("bad.safetensors")) << n;
  }
}

TEST(Safetensors, FlippedHeaderBytesNeverCrash) {
  std::vector<uint8_t> raw = ReadAll(SharedPath("models/stories260K/hf/model.safetensors"));
  int failures = 0;
  for (size_t pos = 0; pos < 8 + 5328; ++pos) {
    const uint8_t saved = raw[pos];
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x20}, uint8_t{0x80}}) {
      raw[pos] = saved ^ x;
      auto f = Parse(raw);
      if (!f.ok()) {
        ++failures;
        ASSERT_THAT(f.status().message(), HasSubstr("bad.safetensors"));
      } else {
        for (const Tensor& t : (*f)->tensors()) {
          ASSERT_GE(static_cast<const uint8_t*>(t.data), raw.data());
          ASSERT_LE(static_cast<const uint8_t*>(t.data) + t.nbytes, raw.data() + raw.size());
        }
      }
    }
    raw[pos] = saved;
  }
  EXPECT_GT(failures, 1000);
}

class SafetensorsDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvserve_safetensors_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SafetensorsDirTest, ShardedIndex) {
  WriteAll(dir_ / "model-00001-of-00002.safetensors", Build(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8));
  WriteAll(dir_ / "model-00002-of-00002.safetensors", Build(R"({"y":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4));
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"metadata":{"total_size":12},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})";
  auto set = SafetensorsSet::OpenDir(dir_.string());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ((*set)->AllTensors().size(), 2u);
  ASSERT_NE((*set)->FindTensor("y"), nullptr);
  EXPECT_EQ((*set)->FindTensor("y")->dtype, DType::kBF16);
  EXPECT_EQ((*set)->FindTensor("x")->nbytes, 8u);
}

TEST_F(SafetensorsDirTest, ShardErrors) {
  auto err = [&]() { return SafetensorsSet::OpenDir(dir_.string()).status(); };
  Status none = err();
  EXPECT_EQ(none.code(), Status::Code::kNotFound);
  EXPECT_THAT(none.message(), HasSubstr("no model.safetensors"));

  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"x":"../../etc/passwd"}})";
  EXPECT_THAT(err().message(), HasSubstr("must be a plain file name"));
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"x":"missing.safetensors"}})";
  EXPECT_THAT(err().message(), HasSubstr("missing.safetensors"));
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":[1]})";
  EXPECT_THAT(err().message(), HasSubstr("no weight_map object"));
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"x":3}})";
  EXPECT_THAT(err().message(), HasSubstr("'x' is not a file name"));
  WriteAll(dir_ / "a.safetensors", Build(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8));
  std::ofstream(dir_ / "model.safetensors.index.json") << R"({"weight_map":{"x":"a.safetensors","z":"a.safetensors"}})";
  EXPECT_THAT(err().message(), HasSubstr("'z'"));
  std::ofstream(dir_ / "model.safetensors.index.json") << "not json";
  EXPECT_THAT(err().message(), HasSubstr("model.safetensors.index.json"));
}

}  // namespace
}  // namespace kvserve
