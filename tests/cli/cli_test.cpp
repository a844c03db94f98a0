// The kvserve binary end to end: generate against llama.cpp's golden output,
// a prompts file through the engine, and one-line errors for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "util/paths.h"

namespace kvserve {
namespace {

using nlohmann::json;

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

RunResult RunKvserve(const std::string& args) {
  std::string err_file = ::testing::TempDir() + "/kvserve_stderr.txt";
  std::string cmd = std::string(KVSERVE_BINARY) + " " + args + " 2>" + err_file;
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  return json::parse(f);
}

const std::string kStories = SharedPath("models/stories260K/stories260K.gguf");

TEST(CliGenerate, GreedyMatchesLlamaCppGolden) {
  for (const char* kv : {"", " --kv-cache-dtype f32", " --kv-cache-dtype f16", " --reference"})
    for (const char* name : {"once_upon_a_time", "lily_and_tom", "hello"}) {
      json golden = ReadJson(SharedPath(std::string("golden/stories260K/") + name + ".json"));
      std::string prompt = golden["prompt"];
      RunResult r =
          RunKvserve("generate --model " + Quote(kStories) + " --prompt " + Quote(prompt) + " --max-tokens 64 --json" + kv);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      json j = json::parse(r.out);
      EXPECT_EQ(j["prompt_tokens"], golden["prompt_tokens"]) << name << kv;
      EXPECT_EQ(j["tokens"], golden["generated_tokens"]) << name << kv;
      EXPECT_TRUE(j["timings"]["gen_tokens_per_s"].get<double>() > 0);
    }
}

// The same --kv-cache-memory holds twice the blocks in f16 (the default) as in f32.
TEST(CliGenerate, F16KvCacheHoldsTwiceTheBlocks) {
  std::string path = ::testing::TempDir() + "/one_prompt.jsonl";
  {
    std::ofstream f(path);
    f << R"({"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0})" << "\n";
  }
  auto blocks = [&](const std::string& kv) {
    RunResult r = RunKvserve("generate --model " + Quote(kStories) + " --prompts-file " + path + " --json --kv-cache-memory 1M" + kv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    std::string line, last;
    while (std::getline(lines, line)) last = line;
    return json::parse(last)["stats"]["kv_blocks_total"].get<int>();
  };
  const int f16 = blocks(""), f32 = blocks(" --kv-cache-dtype f32");
  EXPECT_GT(f32, 0);
  EXPECT_EQ(f16, 2 * f32);
  EXPECT_EQ(blocks(" --kv-cache-dtype f16"), f16);
}

TEST(CliGenerate, StreamsTextAndReportsSpeedOnStderr) {
  RunResult r = RunKvserve("generate --model " + Quote(kStories) + " --prompt 'Once upon a time' --max-tokens 16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

TEST(CliGenerate, PromptsFileKeepsInputOrderAndPrintsStats) {
  std::string path = ::testing::TempDir() + "/prompts.jsonl";
  {
    std::ofstream f(path);
    f << R"({"prompt": "Once upon a time", "max_tokens": 64, "temperature": 0, "seed": 1})" << "\n";
    f << R"({"prompt": "Lily and Tom went to the park. They", "max_tokens": 64, "temperature": 0})" << "\n";
    f << R"({"prompt": "Hello", "max_tokens": 64, "temperature": 0})" << "\n";
  }
  RunResult r = RunKvserve("generate --model " + Quote(kStories) + " --prompts-file " + path + " --json --num-kv-blocks 10 --block-size 8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<json> rows;
  while (std::getline(lines, line)) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  int i = 0;
  for (const char* name : {"once_upon_a_time", "lily_and_tom", "hello"}) {
    json golden = ReadJson(SharedPath(std::string("golden/stories260K/") + name + ".json"));
    EXPECT_EQ(rows[i]["tokens"], golden["generated_tokens"]) << name;
    ++i;
  }
  json stats = rows[3]["stats"];
  EXPECT_GT(stats["preemptions"]["recompute"].get<int>() + stats["preemptions"]["swap"].get<int>(), 0) << stats.dump();
  EXPECT_LE(stats["peak_kv_blocks_used"].get<int>(), 10);
}

TEST(CliErrors, CorruptModelGivesOneClearLine) {
  std::string path = ::testing::TempDir() + "/truncated.gguf";
  {
    std::ifstream in(kStories, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), bytes.size() / 2);
  }
  RunResult r = RunKvserve("generate --model " + path + " --prompt hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("truncated.gguf"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(CliErrors, MissingModelAndBadOptions) {
  RunResult r = RunKvserve("generate --model /nonexistent/model.gguf --prompt hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
  r = RunKvserve("generate --model " + Quote(kStories) + " --prompt hi --kv-cache-memory 12Q");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--kv-cache-memory"), std::string::npos) << r.err;
  r = RunKvserve("generate --model " + Quote(kStories) + " --prompt hi --kv-cache-dtype int8");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--kv-cache-dtype"), std::string::npos) << r.err;
  r = RunKvserve("generate --model " + Quote(kStories) + " --prompt hi --max-tokens 3000");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("2048"), std::string::npos) << r.err;  // the context length is named
}

}  // namespace
}  // namespace kvserve
