#include "server/model_source.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "base/file.h"

namespace crescent::server {
namespace {

namespace fs = std::filesystem;

TEST(ModelSource, FolderMustExist) {
  auto r = ResolveModelDir({"/no/such/folder", "", ""});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  auto dir = ResolveModelDir({"/tmp", "", ""});
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, "/tmp");
}

TEST(ModelSource, UnknownPresetIsAnError) {
  EXPECT_FALSE(ResolveModelDir({"dummy:gpt-5", "", "/tmp/unused"}).ok());
  EXPECT_FALSE(FindTokenizerDir("mystery").ok());
}

TEST(ModelSource, FindsTheRepoTokenizers) {
  auto llama = FindTokenizerDir("tiny-llama3");
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_NE(llama->find("tokenizer-llama3"), std::string::npos);
  auto qwen = FindTokenizerDir("qwen3-0.6b");
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_NE(qwen->find("tokenizer-qwen3"), std::string::npos);
}

TEST(ModelSource, DummyIsWrittenOnceAndReused) {
  const fs::path root = fs::temp_directory_path() / ("crescent_model_source_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const std::string dir = (root / "tiny-llama3").string();
  auto first = ResolveModelDir({"dummy:tiny-llama3", "", dir});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, dir);
  ASSERT_TRUE(FileExists(JoinPath(dir, "model.safetensors")));
  ASSERT_TRUE(FileExists(JoinPath(dir, "tokenizer.json")));
  const auto mtime = fs::last_write_time(JoinPath(dir, "model.safetensors"));
  auto second = ResolveModelDir({"dummy:tiny-llama3", "/no/tokenizer/needed", dir});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(fs::last_write_time(JoinPath(dir, "model.safetensors")), mtime);
  // No temporary folders left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root)) ++entries;
  EXPECT_EQ(entries, 1);
  fs::remove_all(root);
}

}  // namespace
}  // namespace crescent::server
