// crescent: one binary, subcommands registered from cmd_*.cc (commands.h).
#include <cstdio>
#include <cstdlib>

#include <string>

#include "base/logging.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  // CRESCENT_LOG_LEVEL=debug|info|warning|error|off (default info).
  if (const char* l = std::getenv("CRESCENT_LOG_LEVEL")) {
    const std::string v = l;
    using crescent::LogLevel;
    crescent::SetLogLevel(v == "debug" ? LogLevel::kDebug : v == "warning" ? LogLevel::kWarning
                          : v == "error" ? LogLevel::kError : v == "off" ? LogLevel::kOff : LogLevel::kInfo);
  }
  CLI::App app{"crescent: a KVCache-centric LLM serving system"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  crescent::cli::RegisterMakeModel(app);
  crescent::cli::RegisterGenerate(app);
  crescent::cli::RegisterBench(app);
  crescent::cli::RegisterSimulate(app);
  crescent::cli::RegisterTrace(app);
  crescent::cli::RegisterTokenize(app);
  crescent::cli::RegisterServe(app);
  crescent::cli::RegisterConductor(app);
  crescent::cli::RegisterStore(app);
  crescent::cli::RegisterCluster(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const crescent::cli::CommandError& e) {
    std::fprintf(stderr, "crescent: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
