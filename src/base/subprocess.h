// SpawnProcess: starts a program as a child process with some extra environment
// variables and its standard streams wired to given descriptors.
//
// Everything the child needs (argv, the merged environment, /dev/null) is built
// before fork(), so the child only calls dup2 and execvpe: safe in a parent with
// many threads (no malloc or locks between fork and exec). argv[0] is looked up
// on PATH. The caller owns the pid: it must waitpid() it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace crescent {

// For the fd arguments of SpawnProcess.
constexpr int kInheritFd = -2;  // keep the parent's
constexpr int kDevNullFd = -1;  // /dev/null

// extra_env: "NAME=value" entries added to (or replacing in) the current
// environment. The child starts with no signal blocked (a parent that blocks
// SIGINT/SIGTERM to sigwait them does not pass that on). With
// die_with_parent the child is SIGKILLed when the thread that spawned it
// exits (PR_SET_PDEATHSIG): a supervisor killed with -9 leaves no orphans.
// An error if argv is empty or fork fails; a program that cannot be executed
// exits with status 127.
Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                           int stdin_fd, int stdout_fd, int stderr_fd, bool die_with_parent = false);

}  // namespace crescent
