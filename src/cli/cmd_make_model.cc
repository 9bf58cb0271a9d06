#include "cli/commands.h"
namespace crescent::cli {
void RegisterMakeModel(CLI::App&) {}
void RegisterGenerate(CLI::App&) {}
void RegisterBench(CLI::App&) {}
}  // namespace crescent::cli
