// `crescent bench tokenizer --model DIR`: encode throughput on one core for English
// and Chinese text, next to the reference JavaScript implementation
// (transformers.js, run by node on the same text in the same run), with the ratio.
// Targets (Llama 3): >= 20 MB/s on English and >= 10x the reference.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <boost/json.hpp>

#include "base/file.h"
#include "base/json.h"
#include "cli/commands.h"
#include "model/tokenizer.h"

namespace crescent::cli {

namespace {

namespace fs = std::filesystem;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A file of the source tree: from the working directory, or above the binary
// (build folders live inside the repository).
std::string FindRepoFile(const std::string& rel) {
  if (FileExists(rel)) return rel;
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (int i = 0; i < 6 && !ec && !p.empty(); ++i, p = p.parent_path()) {
    if (FileExists((p / rel).string())) return (p / rel).string();
  }
  return "";
}

struct Figure {
  double bytes = 0, mb_s = 0, tokens = 0;
};

Figure MeasureCrescent(const model::Tokenizer& tz, const std::string& text, double seconds) {
  std::vector<std::string_view> lines;
  size_t b = 0;
  while (b <= text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    lines.push_back(std::string_view(text).substr(b, e - b));
    b = e + 1;
  }
  Figure f;
  f.bytes = static_cast<double>(text.size());
  size_t tokens = 0;
  for (auto l : lines) tokens += tz.Encode(l, false).size();  // warm-up, as the reference's cache is
  f.tokens = static_cast<double>(tokens);
  int rounds = 0;
  double t0 = Now(), dt = 0;
  do {
    for (auto l : lines) tokens += tz.Encode(l, false).size();
    ++rounds;
    dt = Now() - t0;
  } while (dt < seconds);
  f.mb_s = f.bytes * rounds / dt / 1e6;
  return f;
}

// Runs the reference; mb_s < 0 with `why` when it cannot.
Figure MeasureReference(const std::string& model, const std::string& file, double seconds, std::string* why) {
  Figure f;
  f.mb_s = -1;
  std::string script = FindRepoFile("tests/e2e/tokenizer_reference.mjs");
  if (script.empty()) {
    *why = "tests/e2e/tokenizer_reference.mjs not found";
    return f;
  }
  std::string cmd = "node '" + script + "' bench '" + model + "' '" + file + "' " + std::to_string(seconds) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *why = "cannot run node";
    return f;
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  auto v = ParseJson(out, "reference output");
  if (rc != 0 || !v.ok() || !v->is_object() || !v->get_object().if_contains("mb_per_s")) {
    *why = "node failed: " + out.substr(0, 300);
    return f;
  }
  f.mb_s = v->get_object().at("mb_per_s").to_number<double>();
  return f;
}

}  // namespace

void RegisterBenchTokenizer(CLI::App& bench) {
  struct Opts {
    std::string model, english = "tests/data/bench_english.txt", chinese = "tests/data/bench_chinese.txt";
    double seconds = 2.0;
    bool json = false, no_reference = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand("tokenizer", "Encode MB/s on one core vs the reference JS tokenizer");
  cmd->add_option("--model", o->model, "Model folder (tokenizer.json, tokenizer_config.json)")->required();
  cmd->add_option("--english", o->english, "English text file");
  cmd->add_option("--chinese", o->chinese, "Chinese text file");
  cmd->add_option("--seconds", o->seconds, "Minimum seconds per measurement")->check(CLI::Range(0.05, 600.0));
  cmd->add_flag("--no-reference", o->no_reference, "Skip the JavaScript reference");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] {
    model::Tokenizer tz = ValueOrThrow(model::Tokenizer::FromDirectory(o->model));
    boost::json::object out;
    if (!o->json) {
      std::printf("%-8s %10s %14s %12s %8s\n", "text", "bytes", "crescent MB/s", "JS MB/s", "ratio");
    }
    for (auto [name, rel] : {std::pair<std::string, std::string>{"english", o->english}, {"chinese", o->chinese}}) {
      std::string path = FindRepoFile(rel);
      if (path.empty()) throw CommandError(rel + ": not found");
      std::string text = ValueOrThrow(ReadFileToString(path));
      Figure c = MeasureCrescent(tz, text, o->seconds);
      std::string why;
      Figure r;
      r.mb_s = -1;
      if (!o->no_reference) r = MeasureReference(o->model, path, o->seconds, &why);
      double ratio = r.mb_s > 0 ? c.mb_s / r.mb_s : 0;
      if (o->json) {
        boost::json::object row{{"bytes", c.bytes}, {"tokens", c.tokens}, {"mb_per_s", c.mb_s}};
        if (r.mb_s > 0) {
          row["reference_mb_per_s"] = r.mb_s;
          row["ratio"] = ratio;
        } else if (!why.empty()) {
          row["reference_error"] = why;
        }
        out[name] = std::move(row);
      } else {
        std::printf("%-8s %10.0f %14.2f %12s %8s\n", name.c_str(), c.bytes, c.mb_s,
                    r.mb_s > 0 ? std::to_string(r.mb_s).substr(0, 6).c_str() : "-",
                    r.mb_s > 0 ? (std::to_string(ratio).substr(0, 5) + "x").c_str() : "-");
        if (!why.empty()) std::printf("  reference unavailable: %s\n", why.c_str());
      }
    }
    if (o->json) {
      std::printf("%s\n", boost::json::serialize(out).c_str());
    } else {
      std::printf("targets: >= 20 MB/s English (Llama 3), >= 10x the JS reference\n");
    }
  });
}

}  // namespace crescent::cli
