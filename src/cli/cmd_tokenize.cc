// `crescent tokenize` and `crescent detokenize`: the model folder's tokenizer on
// the command line.
//   crescent tokenize --model DIR (--text T | --file F) [--json] [--no-special]
//   crescent detokenize --model DIR --ids 1,2,3 [--skip-special]
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/tokenizer.h"

namespace crescent::cli {

namespace {

std::string IdsJson(const std::vector<int32_t>& ids) {
  std::string s = "{\"ids\":[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s.push_back(',');
    s += std::to_string(ids[i]);
  }
  return s + "]}";
}

std::string IdsPlain(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s.push_back(',');
    s += std::to_string(ids[i]);
  }
  return s;
}

}  // namespace

void RegisterTokenize(CLI::App& app) {
  struct Opts {
    std::string model, text, file, ids;
    bool json = false, no_special = false, skip_special = false;
  };
  auto o = std::make_shared<Opts>();

  CLI::App* tok = app.add_subcommand("tokenize", "Text to token ids with the model's tokenizer.json");
  tok->add_option("--model", o->model, "Model folder (tokenizer.json, tokenizer_config.json)")->required();
  auto* t = tok->add_option("--text", o->text, "Text to tokenize");
  auto* f = tok->add_option("--file", o->file, "File to tokenize, one result per line");
  t->excludes(f);
  tok->add_flag("--json", o->json, "Print {\"ids\":[...]} (one object per line with --file)");
  tok->add_flag("--no-special", o->no_special, "Do not add the model's special tokens (e.g. BOS)");
  tok->callback([o, t, f] {
    if (t->count() == 0 && f->count() == 0) throw CommandError("give --text or --file");
    model::Tokenizer tz = ValueOrThrow(model::Tokenizer::FromDirectory(o->model));
    auto print = [&](const std::vector<int32_t>& ids) {
      std::string line = o->json ? IdsJson(ids) : IdsPlain(ids);
      std::printf("%s\n", line.c_str());
    };
    if (t->count() > 0) {
      print(tz.Encode(o->text, !o->no_special));
      return;
    }
    std::ifstream in(o->file, std::ios::binary);
    if (!in) throw CommandError(o->file + ": cannot open");
    std::string line;
    while (std::getline(in, line)) print(tz.Encode(line, !o->no_special));
  });

  CLI::App* detok = app.add_subcommand("detokenize", "Token ids to text with the model's tokenizer.json");
  detok->add_option("--model", o->model, "Model folder (tokenizer.json, tokenizer_config.json)")->required();
  detok->add_option("--ids", o->ids, "Token ids, comma-separated")->required();
  detok->add_flag("--skip-special", o->skip_special, "Drop special tokens from the text");
  detok->callback([o] {
    std::vector<int32_t> ids = ValueOrThrow(ParseIdList(o->ids, "--ids"));
    model::Tokenizer tz = ValueOrThrow(model::Tokenizer::FromDirectory(o->model));
    for (int32_t id : ids) {
      if (id >= tz.vocab_size() || tz.IdToToken(id).empty()) {
        throw CommandError("--ids: " + std::to_string(id) + " is not in the vocabulary (size " +
                           std::to_string(tz.vocab_size()) + ")");
      }
    }
    std::string text = tz.Decode(ids, o->skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
  });
}

}  // namespace crescent::cli
