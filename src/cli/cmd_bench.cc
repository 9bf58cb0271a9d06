// `crescent bench <what>`: benchmarks that print figures and the limits they are
// judged against, measured in the same run.
#include "cli/commands.h"

namespace crescent::cli {

void RegisterBench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (figures and ratios to measured limits)");
  bench->require_subcommand(1);
  RegisterBenchEngine(*bench);
  RegisterBenchTokenizer(*bench);
  RegisterBenchTransfer(*bench);
  RegisterBenchServe(*bench);
  RegisterBenchStore(*bench);
  RegisterBenchOffload(*bench);
  RegisterBenchPd(*bench);
  RegisterBenchTrace(*bench);
}

}  // namespace crescent::cli
