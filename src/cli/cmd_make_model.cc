// `crescent make-model`: write a random-weight model in the real formats.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "base/logging.h"
#include "cli/commands.h"
#include "base/file.h"
#include "model/dummy_model.h"
#include "model/gguf_convert.h"

namespace crescent::cli {

void RegisterMakeModel(CLI::App& app) {
  struct Opts {
    std::string config, tokenizer, out, format = "safetensors", type = "f16";
    uint64_t seed = 0;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("make-model", "Write a dummy (random-weight) model: config.json, "
                                                   "model.safetensors (bf16), tokenizer files");
  cmd->add_option("--config", opts->config, "tiny-llama3 | tiny-qwen3 | tiny-llama2 | llama3-1b | qwen3-0.6b | path/to/config.json")
      ->required();
  cmd->add_option("--tokenizer", opts->tokenizer, "Folder with tokenizer.json and tokenizer_config.json")->required();
  cmd->add_option("--out", opts->out, "Output folder")->required();
  cmd->add_option("--seed", opts->seed, "Weight seed (deterministic)");
  cmd->add_option("--format", opts->format, "safetensors (a Hugging Face folder) | gguf (OUT/model.gguf)")
      ->check(CLI::IsMember({"safetensors", "gguf"}));
  cmd->add_option("--type", opts->type,
                  "GGUF tensor type: f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m | q5_k_m | q4_k | q5_k | q6_k");
  cmd->callback([opts] {
    model::DummyModelSpec spec;
    spec.config = ValueOrThrow(model::ResolveDummyConfig(opts->config));
    spec.tokenizer_dir = opts->tokenizer;
    spec.out_dir = opts->out;
    spec.seed = opts->seed;
    if (opts->format == "gguf") {
      // The same weights as the safetensors model of this seed, converted as
      // llama.cpp's tools would (model/gguf_convert.h).
      spec.out_dir = opts->out + ".hf-tmp";
      ThrowIfError(model::WriteDummyModel(spec));
      ThrowIfError(MakeDirectories(opts->out));
      const Status st = model::ConvertToGguf(spec.out_dir, JoinPath(opts->out, "model.gguf"), opts->type);
      std::error_code ec;
      std::filesystem::remove_all(spec.out_dir, ec);
      ThrowIfError(st);
    } else {
      ThrowIfError(model::WriteDummyModel(spec));
    }
    std::printf("wrote %s (%s, %.1fM parameters)\n", opts->out.c_str(),
                std::string(model::ArchitectureName(spec.config.architecture)).c_str(),
                static_cast<double>(spec.config.NonEmbeddingParams() + spec.config.vocab_size * spec.config.hidden_size *
                                                                           (spec.config.tie_word_embeddings ? 0 : 1)) /
                    1e6);
  });
}

}  // namespace crescent::cli
