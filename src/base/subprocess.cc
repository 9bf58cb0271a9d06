#include "base/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

extern char** environ;

namespace crescent {

Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                           int stdin_fd, int stdout_fd, int stderr_fd, bool die_with_parent) {
  if (argv.empty()) return InvalidArgument("SpawnProcess: empty argv");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The current environment, minus the names extra_env sets, then extra_env.
  std::vector<char*> envp;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    const size_t name_len = eq ? static_cast<size_t>(eq - *e) : std::strlen(*e);
    bool replaced = false;
    for (const auto& x : extra_env) {
      replaced |= x.size() > name_len && x[name_len] == '=' && x.compare(0, name_len, *e, name_len) == 0;
    }
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& x : extra_env) envp.push_back(const_cast<char*>(x.c_str()));
  envp.push_back(nullptr);
  const bool need_null = stdin_fd == kDevNullFd || stdout_fd == kDevNullFd || stderr_fd == kDevNullFd;
  const int null_fd = need_null ? open("/dev/null", O_RDWR | O_CLOEXEC) : -1;
  if (need_null && null_fd < 0) return Internal("SpawnProcess: cannot open /dev/null");
  const int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
  const pid_t parent = getpid();
  sigset_t none;
  sigemptyset(&none);
  const pid_t pid = fork();
  if (pid < 0) {
    if (null_fd >= 0) close(null_fd);
    return Internal(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {  // only async-signal-safe calls from here to exec
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent died before the prctl
    }
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int i = 0; i < 3; ++i) {
      const int fd = fds[i] == kDevNullFd ? null_fd : fds[i];
      if (fd >= 0 && dup2(fd, i) < 0) _exit(127);
    }
    execvpe(args[0], args.data(), envp.data());
    _exit(127);
  }
  if (null_fd >= 0) close(null_fd);
  return pid;
}

}  // namespace crescent
