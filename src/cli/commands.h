// Subcommand registration for the `crescent` binary.
//
// Each Register* adds one subcommand to the app and sets its callback. A
// callback reports failure by throwing CommandError (caught in main, printed as
// one readable line, exit code 1); this is the one place exceptions are used,
// because CLI11 is exception-based. Never let a crescent Status escape as a crash.
#pragma once

#include <CLI/CLI.hpp>

#include <stdexcept>
#include <string>

#include "base/status.h"

namespace crescent::cli {

struct CommandError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws CommandError with the status message when `s` is not OK.
inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw CommandError(s.message());
}
template <typename T>
T ValueOrThrow(Result<T> r) {
  ThrowIfError(r.status());
  return std::move(r).value();
}

void RegisterMakeModel(CLI::App& app);
void RegisterGenerate(CLI::App& app);
void RegisterBench(CLI::App& app);
void RegisterTokenize(CLI::App& app);  // tokenize + detokenize
void RegisterSimulate(CLI::App& app);
void RegisterTrace(CLI::App& app);  // make-trace + trace-stats
void RegisterServe(CLI::App& app);
void RegisterConductor(CLI::App& app);  // cmd_serve.cc: the same server, role "front"
void RegisterStore(CLI::App& app);  // store-master, store-node, store-cli
void RegisterCluster(CLI::App& app);  // cluster up
// Parts of `crescent bench`, each in cmd_bench_<name>.cc, called from RegisterBench.
void RegisterBenchEngine(CLI::App& bench);
void RegisterBenchTokenizer(CLI::App& bench);
void RegisterBenchTransfer(CLI::App& bench);
void RegisterBenchServe(CLI::App& bench);
void RegisterBenchStore(CLI::App& bench);
void RegisterBenchOffload(CLI::App& bench);
void RegisterBenchPd(CLI::App& bench);
void RegisterBenchTrace(CLI::App& bench);

}  // namespace crescent::cli
