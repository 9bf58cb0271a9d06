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

// warm: repeated passes over the text (the word caches of both sides hold its
// words); cold: the first pass on a freshly loaded tokenizer.
std::string FormatMbs(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : "%.2f", x);
  return buf;
}

struct Figure {
  double bytes = 0, mb_s = -1, cold_mb_s = -1, tokens = 0;
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
  double c0 = Now();
  for (auto l : lines) tokens += tz.Encode(l, false).size();
  f.cold_mb_s = f.bytes / (Now() - c0) / 1e6;
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
  if (const auto* c = v->get_object().if_contains("cold_mb_per_s")) f.cold_mb_s = c->to_number<double>();
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
    boost::json::object out;
    if (!o->json) {
      std::printf("%-8s %8s | %-19s | %-19s | %-15s\n", "", "", "crescent MB/s", "JS reference MB/s", "ratio");
      std::printf("%-8s %8s | %9s %9s | %9s %9s | %7s %7s\n", "text", "bytes", "warm", "cold", "warm", "cold", "warm",
                  "cold");
    }
    auto num = [](double x) { return x > 0 ? FormatMbs(x) : std::string("-"); };
    for (auto [name, rel] : {std::pair<std::string, std::string>{"english", o->english}, {"chinese", o->chinese}}) {
      std::string path = FindRepoFile(rel);
      if (path.empty()) throw CommandError(rel + ": not found");
      std::string text = ValueOrThrow(ReadFileToString(path));
      // A fresh tokenizer per text, so the cold pass starts with an empty word cache.
      model::Tokenizer tz = ValueOrThrow(model::Tokenizer::FromDirectory(o->model));
      Figure c = MeasureCrescent(tz, text, o->seconds);
      std::string why;
      Figure r;
      if (!o->no_reference) r = MeasureReference(o->model, path, o->seconds, &why);
      double ratio = r.mb_s > 0 ? c.mb_s / r.mb_s : 0;
      double cold_ratio = r.cold_mb_s > 0 ? c.cold_mb_s / r.cold_mb_s : 0;
      if (o->json) {
        boost::json::object row{{"bytes", c.bytes}, {"tokens", c.tokens}, {"mb_per_s", c.mb_s},
                                {"cold_mb_per_s", c.cold_mb_s}};
        if (r.mb_s > 0) {
          row["reference_mb_per_s"] = r.mb_s;
          row["reference_cold_mb_per_s"] = r.cold_mb_s;
          row["ratio"] = ratio;
          row["cold_ratio"] = cold_ratio;
        } else if (!why.empty()) {
          row["reference_error"] = why;
        }
        out[name] = std::move(row);
      } else {
        std::printf("%-8s %8.0f | %9s %9s | %9s %9s | %6sx %6sx\n", name.c_str(), c.bytes, num(c.mb_s).c_str(),
                    num(c.cold_mb_s).c_str(), num(r.mb_s).c_str(), num(r.cold_mb_s).c_str(), num(ratio).c_str(),
                    num(cold_ratio).c_str());
        if (!why.empty()) std::printf("  reference unavailable: %s\n", why.c_str());
      }
    }
    if (o->json) {
      std::printf("%s\n", boost::json::serialize(out).c_str());
    } else {
      std::printf("warm: repeated passes (word caches hold the text's words); cold: first pass, fresh tokenizer\n");
      std::printf("targets: >= 20 MB/s English (Llama 3), >= 10x the JS reference\n");
    }
  });
}

}  // namespace crescent::cli
