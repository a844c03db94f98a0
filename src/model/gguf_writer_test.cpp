#include "model/gguf_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "model/gguf_reader.h"
#include "util/paths.h"

namespace kvserve {
namespace {

namespace fs = std::filesystem;

class GgufWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kvserve_gguf_writer_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// Compares two metadata values field by field (types, scalars, nested arrays).
void ExpectSameValue(const GgufValue& a, const GgufValue& b, const std::string& key) {
  ASSERT_EQ(a.type, b.type) << key;
  switch (a.type) {
    case GgufType::kString: EXPECT_EQ(a.s, b.s) << key; break;
    case GgufType::kFloat32: case GgufType::kFloat64: EXPECT_EQ(a.f, b.f) << key; break;
    case GgufType::kArray:
      ASSERT_EQ(a.elem_type, b.elem_type) << key;
      ASSERT_EQ(a.array.size(), b.array.size()) << key;
      for (size_t i = 0; i < a.array.size(); ++i) ExpectSameValue(a.array[i], b.array[i], key + "[" + std::to_string(i) + "]");
      break;
    default:
      EXPECT_EQ(a.i, b.i) << key;
      EXPECT_EQ(a.u, b.u) << key;
  }
}

GgufValue Scalar(GgufType t, int64_t x) {
  GgufValue v;
  v.type = t;
  v.i = x;
  v.u = static_cast<uint64_t>(x);
  return v;
}

TEST_F(GgufWriterTest, EveryMetadataTypeRoundTrips) {
  GgufWriter w;
  w.Set("t.u8", Scalar(GgufType::kUint8, 200));
  w.Set("t.i8", Scalar(GgufType::kInt8, -100));
  w.Set("t.u16", Scalar(GgufType::kUint16, 60000));
  w.Set("t.i16", Scalar(GgufType::kInt16, -30000));
  w.SetUint32("t.u32", 4000000000u);
  w.SetInt32("t.i32", -2000000000);
  w.SetUint64("t.u64", uint64_t{1} << 62);
  w.Set("t.i64", Scalar(GgufType::kInt64, -(int64_t{1} << 60)));
  w.SetFloat32("t.f32", 0.15625f);
  GgufValue f64;
  f64.type = GgufType::kFloat64;
  f64.f = 1e-300;
  w.Set("t.f64", f64);
  w.SetBool("t.bool", true);
  w.SetString("t.str", "h\xC3\xA9llo \0 world");
  w.SetString("t.empty", "");
  w.SetStringArray("t.strs", {"a", "", "\xE2\x96\x81the", "<|eot_id|>"});
  w.SetIntArray("t.i32s", GgufType::kInt32, {-1, 0, 1, 2147483647});
  w.SetIntArray("t.u8s", GgufType::kUint8, {0, 1, 255});
  w.SetIntArray("t.bools", GgufType::kBool, {1, 0, 1});
  w.SetFloatArray("t.f32s", {-1000.0f, 0.0f, 3.5f});
  GgufValue nested;
  nested.type = GgufType::kArray;
  nested.elem_type = GgufType::kArray;
  for (int k = 0; k < 2; ++k) {
    GgufValue inner;
    inner.type = GgufType::kArray;
    inner.elem_type = GgufType::kInt16;
    for (int j = 0; j <= k; ++j) inner.array.push_back(Scalar(GgufType::kInt16, -j - k));
    nested.array.push_back(inner);
  }
  w.Set("t.nested", nested);
  w.SetUint32("t.replaced", 1);
  w.SetString("t.replaced", "second");  // replaces, does not duplicate

  ASSERT_TRUE(w.Write(Path("meta.gguf")).ok());
  auto g = GgufFile::Open(Path("meta.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->version(), 3u);
  EXPECT_EQ((*g)->alignment(), 32u);
  EXPECT_FALSE((*g)->Has("general.alignment"));  // default alignment is implicit
  EXPECT_EQ((*g)->metadata().size(), 20u);
  EXPECT_EQ((*g)->GetInt("t.u8").value(), 200);
  EXPECT_EQ((*g)->GetInt("t.i8").value(), -100);
  EXPECT_EQ((*g)->GetInt("t.u16").value(), 60000);
  EXPECT_EQ((*g)->GetInt("t.i16").value(), -30000);
  EXPECT_EQ((*g)->GetInt("t.u32").value(), 4000000000LL);
  EXPECT_EQ((*g)->GetInt("t.i32").value(), -2000000000);
  EXPECT_EQ((*g)->Find("t.u64")->u, uint64_t{1} << 62);
  EXPECT_EQ((*g)->GetInt("t.i64").value(), -(int64_t{1} << 60));
  EXPECT_EQ((*g)->GetFloat("t.f32").value(), 0.15625);
  EXPECT_EQ((*g)->GetFloat("t.f64").value(), 1e-300);
  EXPECT_TRUE((*g)->GetBool("t.bool").value());
  EXPECT_EQ((*g)->GetString("t.str").value(), std::string("h\xC3\xA9llo \0 world"));
  EXPECT_EQ((*g)->GetString("t.empty").value(), "");
  EXPECT_EQ((*g)->GetStringArray("t.strs").value(), (std::vector<std::string>{"a", "", "\xE2\x96\x81the", "<|eot_id|>"}));
  EXPECT_EQ((*g)->GetIntArray("t.i32s").value(), (std::vector<int64_t>{-1, 0, 1, 2147483647}));
  EXPECT_EQ((*g)->Find("t.i32s")->elem_type, GgufType::kInt32);
  EXPECT_EQ((*g)->GetIntArray("t.u8s").value(), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ((*g)->Find("t.bools")->elem_type, GgufType::kBool);
  EXPECT_EQ((*g)->GetIntArray("t.bools").value(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ((*g)->GetFloatArray("t.f32s").value(), (std::vector<float>{-1000.0f, 0.0f, 3.5f}));
  ExpectSameValue(*(*g)->Find("t.nested"), nested, "t.nested");
  EXPECT_EQ((*g)->GetString("t.replaced").value(), "second");
  EXPECT_TRUE((*g)->tensors().empty());
}

TEST_F(GgufWriterTest, TensorsRoundTripAlignedAndStreamedInChunks) {
  std::mt19937 rng(7);
  struct Spec {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Spec> specs = {
      {"a.f32", DType::kF32, {3}, {}},           {"b.f16", DType::kF16, {5, 7}, {}},
      {"c.q8_0", DType::kQ8_0, {9, 64}, {}},     {"d.q4_0", DType::kQ4_0, {2, 3, 32}, {}},
      {"e.bf16", DType::kBF16, {1, 1, 2, 3}, {}}, {"f.q8_0.big", DType::kQ8_0, {1000, 96}, {}},
  };
  GgufWriter w;
  std::vector<std::pair<int64_t, int64_t>> big_calls;
  for (Spec& s : specs) {
    int64_t numel = 1;
    for (int64_t d : s.shape) numel *= d;
    const DTypeInfo& info = GetDTypeInfo(s.dtype);
    s.bytes.resize(numel / info.block_elems * info.block_bytes);
    for (uint8_t& b : s.bytes) b = static_cast<uint8_t>(rng());
    if (s.name == "f.q8_0.big") {
      const size_t row_bytes = RowBytes(s.dtype, s.shape.back());
      const uint8_t* src = s.bytes.data();
      ASSERT_TRUE(w.AddTensor(s.name, s.dtype, s.shape, [&, src, row_bytes](int64_t r, int64_t n, uint8_t* dst) {
                     big_calls.emplace_back(r, n);
                     std::memcpy(dst, src + r * row_bytes, n * row_bytes);
                     return Status::Ok();
                   }).ok());
    } else {
      ASSERT_TRUE(w.AddTensorBytes(s.name, s.dtype, s.shape, s.bytes).ok()) << s.name;
    }
  }
  uint64_t total = 0;
  for (const Spec& s : specs) total += s.bytes.size();
  EXPECT_EQ(w.tensor_data_bytes(), total);
  EXPECT_EQ(w.num_tensors(), specs.size());

  // 1000 rows of 3 blocks (102 bytes): chunks of 10000 bytes hold 98 rows.
  ASSERT_TRUE(w.Write(Path("t.gguf"), 10000).ok());
  ASSERT_EQ(big_calls.size(), 11u);
  int64_t next = 0;
  for (auto [r, n] : big_calls) {
    EXPECT_EQ(r, next);
    EXPECT_LE(n * 102, 10000);
    next = r + n;
  }
  EXPECT_EQ(next, 1000);

  auto g = GgufFile::Open(Path("t.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ((*g)->tensors().size(), specs.size());
  for (size_t k = 0; k < specs.size(); ++k) {
    const Tensor& t = (*g)->tensors()[k];
    EXPECT_EQ(t.name, specs[k].name);  // file order is insertion order
    EXPECT_EQ(t.dtype, specs[k].dtype) << t.name;
    EXPECT_EQ(t.shape, specs[k].shape) << t.name;
    ASSERT_EQ(t.nbytes, specs[k].bytes.size()) << t.name;
    EXPECT_EQ(std::memcmp(t.data, specs[k].bytes.data(), t.nbytes), 0) << t.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << t.name;  // the map is page aligned
  }
  EXPECT_FALSE(fs::exists(Path("t.gguf.tmp")));
}

TEST_F(GgufWriterTest, NonDefaultAlignmentIsRecordedAndHonoured) {
  GgufWriter w(256);
  const std::vector<uint8_t> a(6, 1), b(4, 2);
  ASSERT_TRUE(w.AddTensorBytes("a", DType::kF16, {3}, a).ok());
  ASSERT_TRUE(w.AddTensorBytes("b", DType::kF32, {1}, b).ok());
  ASSERT_TRUE(w.Write(Path("al.gguf")).ok());
  auto g = GgufFile::Open(Path("al.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->alignment(), 256u);
  EXPECT_EQ((*g)->GetInt("general.alignment").value(), 256);
  const auto* ta = (*g)->FindTensor("a");
  const auto* tb = (*g)->FindTensor("b");
  ASSERT_TRUE(ta && tb);
  EXPECT_EQ(static_cast<const uint8_t*>(tb->data) - static_cast<const uint8_t*>(ta->data), 256);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ta->data) % 256, 0u);
  EXPECT_EQ(std::memcmp(tb->data, b.data(), 4), 0);
}

TEST_F(GgufWriterTest, BadTensorsAreRejectedWithTheirName) {
  GgufWriter w;
  const std::vector<uint8_t> bytes(8, 0);
  ASSERT_TRUE(w.AddTensorBytes("x", DType::kF32, {2}, bytes).ok());
  Status dup = w.AddTensorBytes("x", DType::kF32, {2}, bytes);
  EXPECT_EQ(dup.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(dup.message().find("'x'"), std::string::npos) << dup.message();

  Status block = w.AddTensor("q", DType::kQ8_0, {4, 33}, [](int64_t, int64_t, uint8_t*) { return Status::Ok(); });
  EXPECT_EQ(block.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(block.message().find("'q'"), std::string::npos) << block.message();
  EXPECT_NE(block.message().find("33"), std::string::npos) << block.message();

  Status size = w.AddTensorBytes("s", DType::kF16, {3}, bytes);  // needs 6 bytes
  EXPECT_EQ(size.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(size.message().find("'s'"), std::string::npos) << size.message();

  EXPECT_FALSE(w.AddTensor("z", DType::kF32, {}, [](int64_t, int64_t, uint8_t*) { return Status::Ok(); }).ok());
  EXPECT_FALSE(w.AddTensor("z", DType::kF32, {1, 1, 1, 1, 1}, [](int64_t, int64_t, uint8_t*) { return Status::Ok(); }).ok());
  EXPECT_FALSE(w.AddTensor("z", DType::kF32, {0, 4}, [](int64_t, int64_t, uint8_t*) { return Status::Ok(); }).ok());
  EXPECT_FALSE(w.AddTensor("z", DType::kF32, {4}, nullptr).ok());
  // Rejected tensors leave nothing behind: the file holds only "x".
  EXPECT_EQ(w.num_tensors(), 1u);
  ASSERT_TRUE(w.Write(Path("ok.gguf")).ok());
  auto g = GgufFile::Open(Path("ok.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->tensors().size(), 1u);
}

TEST_F(GgufWriterTest, FailedWritesLeaveNoFile) {
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("bad", DType::kF32, {4, 4}, [](int64_t r, int64_t, uint8_t*) {
                 return Status::Internal("generator failed at row " + std::to_string(r));
               }).ok());
  Status st = w.Write(Path("bad.gguf"));
  EXPECT_EQ(st.code(), Status::Code::kInternal);
  EXPECT_NE(st.message().find("bad.gguf: tensor 'bad': generator failed at row 0"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(Path("bad.gguf")));
  EXPECT_FALSE(fs::exists(Path("bad.gguf.tmp")));

  GgufWriter empty;
  Status io = empty.Write(Path("no/such/dir/x.gguf"));
  EXPECT_EQ(io.code(), Status::Code::kIOError);
  EXPECT_NE(io.message().find("no/such/dir/x.gguf"), std::string::npos) << io.message();
}

// A real llama.cpp-written file, copied through the writer: same metadata, same
// tensors, same bytes, and (llama.cpp also aligns to 32) the same file size.
TEST_F(GgufWriterTest, RewritesStories260KIdentically) {
  const std::string src = SharedPath("models/stories260K/stories260K.gguf");
  auto orig = GgufFile::Open(src);
  ASSERT_TRUE(orig.ok()) << orig.status().ToString();
  GgufWriter w(static_cast<uint32_t>((*orig)->alignment()));
  for (const auto& [key, value] : (*orig)->metadata()) w.Set(key, value);
  for (const Tensor& t : (*orig)->tensors()) {
    ASSERT_TRUE(w.AddTensorBytes(t.name, t.dtype, t.shape, {static_cast<const uint8_t*>(t.data), t.nbytes}).ok()) << t.name;
  }
  ASSERT_TRUE(w.Write(Path("copy.gguf")).ok());
  auto copy = GgufFile::Open(Path("copy.gguf"));
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  ASSERT_EQ((*copy)->metadata().size(), (*orig)->metadata().size());
  for (const auto& [key, value] : (*orig)->metadata()) {
    const GgufValue* v = (*copy)->Find(key);
    ASSERT_NE(v, nullptr) << key;
    ExpectSameValue(*v, value, key);
  }
  ASSERT_EQ((*copy)->tensors().size(), (*orig)->tensors().size());
  for (size_t k = 0; k < (*orig)->tensors().size(); ++k) {
    const Tensor& a = (*orig)->tensors()[k];
    const Tensor& b = (*copy)->tensors()[k];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.dtype, b.dtype) << a.name;
    EXPECT_EQ(a.shape, b.shape) << a.name;
    ASSERT_EQ(a.nbytes, b.nbytes) << a.name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
  EXPECT_EQ(fs::file_size(Path("copy.gguf")), fs::file_size(src));
}

}  // namespace
}  // namespace kvserve
