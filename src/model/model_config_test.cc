#include "model/model_config.h"

#include <gtest/gtest.h>

#include "model/dummy_model.h"

namespace crescent::model {
namespace {

const char* kLlama = R"({
  "architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
  "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
  "tie_word_embeddings": true, "eos_token_id": [1, 2], "bos_token_id": 0})";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

TEST(ModelConfigTest, ParsesLlama3) {
  auto c = ParseModelConfig(kLlama, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, Architecture::kLlama);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 32.0);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->qk_norm);
}

TEST(ModelConfigTest, ArchitectureFeatures) {
  auto q2 = ParseModelConfig(Replace(kLlama, "LlamaForCausalLM", "Qwen2ForCausalLM"), "c");
  ASSERT_TRUE(q2.ok());
  EXPECT_TRUE(q2->qkv_bias);
  EXPECT_FALSE(q2->o_bias);
  auto q3 = ParseModelConfig(Replace(Replace(kLlama, "LlamaForCausalLM", "Qwen3ForCausalLM"), "\"vocab_size\"",
                                     "\"head_dim\": 32, \"vocab_size\""),
                             "c");
  ASSERT_TRUE(q3.ok()) << q3.status().ToString();
  EXPECT_TRUE(q3->qk_norm);
  EXPECT_EQ(q3->head_dim, 32);  // override: q_dim 128 != hidden 64
  EXPECT_EQ(q3->q_dim(), 128);
  auto m = ParseModelConfig(Replace(Replace(kLlama, "LlamaForCausalLM", "MistralForCausalLM"), "\"vocab_size\"",
                                    "\"sliding_window\": 4096, \"vocab_size\""),
                            "c");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->sliding_window, 4096);
}

TEST(ModelConfigTest, ErrorsNameTheField) {
  auto unknown = ParseModelConfig(Replace(kLlama, "LlamaForCausalLM", "GPT2LMHeadModel"), "config.json");
  EXPECT_NE(unknown.status().message().find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos);
  auto missing = ParseModelConfig(Replace(kLlama, "\"hidden_size\": 64,", ""), "config.json");
  EXPECT_EQ(missing.status().message(), "config.json: field 'hidden_size': missing");
  auto wrong = ParseModelConfig(Replace(kLlama, "\"hidden_size\": 64", "\"hidden_size\": \"64\""), "config.json");
  EXPECT_EQ(wrong.status().message(), "config.json: field 'hidden_size': expected an integer, got string");
  auto neg = ParseModelConfig(Replace(kLlama, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": -2"), "c");
  EXPECT_NE(neg.status().message().find("num_hidden_layers"), std::string::npos);
  auto gqa = ParseModelConfig(Replace(kLlama, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"), "c");
  EXPECT_NE(gqa.status().message().find("num_key_value_heads"), std::string::npos);
  auto rope = ParseModelConfig(Replace(kLlama, "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\""), "c");
  EXPECT_NE(rope.status().message().find("unsupported RoPE scaling 'yarn'"), std::string::npos);
  auto act = ParseModelConfig(Replace(kLlama, "\"vocab_size\"", "\"hidden_act\": \"gelu\", \"vocab_size\""), "c");
  EXPECT_NE(act.status().message().find("hidden_act"), std::string::npos);
  auto eos = ParseModelConfig(Replace(kLlama, "[1, 2]", "\"x\""), "c");
  EXPECT_NE(eos.status().message().find("eos_token_id"), std::string::npos);
  EXPECT_FALSE(ParseModelConfig("{", "c").ok());
  EXPECT_FALSE(ParseModelConfig("[]", "c").ok());
}

// Found by fuzz_model_config: sizes whose products overflow int64 (a vocab of
// 1.4e16, a head_dim of 6.4e18) were accepted and NonEmbeddingParams overflowed.
TEST(ModelConfigTest, SizesPastTheirBoundsAreRefused) {
  auto vocab = ParseModelConfig(Replace(kLlama, "\"vocab_size\": 1000", "\"vocab_size\": 14000000000001128"), "c");
  EXPECT_EQ(vocab.status().message(), "c: field 'vocab_size': must be in [1, 4194304], got 14000000000001128");
  auto head = ParseModelConfig(Replace(kLlama, "\"vocab_size\"", "\"head_dim\": 6422222222222222222, \"vocab_size\""), "c");
  EXPECT_NE(head.status().message().find("field 'head_dim': must be in [1, 4096]"), std::string::npos);
  // Derived (hidden_size / num_attention_heads) the same bound holds.
  auto derived = ParseModelConfig(Replace(Replace(kLlama, "\"hidden_size\": 64", "\"hidden_size\": 8248"),
                                          "\"num_attention_heads\": 4", "\"num_attention_heads\": 2"),
                                  "c");
  EXPECT_NE(derived.status().message().find("field 'head_dim': must be in [1, 4096], got 4124"), std::string::npos)
      << derived.status().message();
  auto width = ParseModelConfig(Replace(kLlama, "\"hidden_size\": 64", "\"hidden_size\": 262144"), "c");
  EXPECT_NE(width.status().message().find("hidden_size"), std::string::npos);
  auto pos = ParseModelConfig(Replace(kLlama, "\"vocab_size\"", "\"max_position_embeddings\": 1000000000000, \"vocab_size\""), "c");
  EXPECT_NE(pos.status().message().find("max_position_embeddings"), std::string::npos);
  auto factor = ParseModelConfig(Replace(kLlama, "\"factor\": 32.0", "\"factor\": 0"), "c");
  EXPECT_NE(factor.status().message().find("factor must be positive"), std::string::npos);
  auto freq = ParseModelConfig(Replace(kLlama, "\"high_freq_factor\": 4.0", "\"high_freq_factor\": 1.0"), "c");
  EXPECT_NE(freq.status().message().find("low_freq_factor < high_freq_factor"), std::string::npos);
  // Found by fuzz_model_config: an eos id past INT64_MAX made Boost.JSON throw.
  auto eos = ParseModelConfig(Replace(kLlama, "[1, 2]", "[1, 17777777777777777770]"), "c");
  EXPECT_NE(eos.status().message().find("eos_token_id"), std::string::npos);
  auto eos1 = ParseModelConfig(Replace(kLlama, "[1, 2]", "17777777777777777770"), "c");
  EXPECT_NE(eos1.status().message().find("eos_token_id"), std::string::npos);
  // Found by fuzz_model_config: 1E8000 reads as infinity and did not write back.
  auto eps = ParseModelConfig(Replace(kLlama, "\"rms_norm_eps\": 1e-5", "\"rms_norm_eps\": 1E8000"), "c");
  EXPECT_NE(eps.status().message().find("rms_norm_eps': must be positive and finite"), std::string::npos);
  auto theta = ParseModelConfig(Replace(kLlama, "\"rope_theta\": 500000.0", "\"rope_theta\": 1E8000"), "c");
  EXPECT_NE(theta.status().message().find("rope_theta"), std::string::npos);
  auto inf_factor = ParseModelConfig(Replace(kLlama, "\"factor\": 32.0", "\"factor\": 1E8000"), "c");
  EXPECT_NE(inf_factor.status().message().find("factor must be positive and finite"), std::string::npos);
  // The largest sizes allowed still give a parameter count that fits.
  auto big = ParseModelConfig(Replace(Replace(Replace(Replace(kLlama, "\"hidden_size\": 64", "\"hidden_size\": 131072"),
                                                      "\"num_attention_heads\": 4", "\"num_attention_heads\": 32"),
                                              "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 4096"),
                                      "\"intermediate_size\": 128", "\"intermediate_size\": 1048576"),
                              "c");
  ASSERT_TRUE(big.ok()) << big.status().message();
  EXPECT_GT(big->NonEmbeddingParams(), int64_t{1} << 50);
}

TEST(ModelConfigTest, PresetsRoundTripThroughJson) {
  for (const std::string& name : DummyPresetNames()) {
    auto c = DummyPresetConfig(name);
    ASSERT_TRUE(c.ok()) << name;
    auto back = ParseModelConfig(c->ToJson(), name);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->ToJson(), c->ToJson()) << name;
    EXPECT_EQ(back->Fingerprint(), c->Fingerprint());
  }
  auto l1b = DummyPresetConfig("llama3-1b");
  // Llama-3.2-1B: 1.236e9 parameters with tied embeddings.
  EXPECT_NEAR(static_cast<double>(l1b->NonEmbeddingParams()), 1.2358e9, 1e6);
  EXPECT_FALSE(DummyPresetConfig("llama-7t").ok());
}

}  // namespace
}  // namespace crescent::model
