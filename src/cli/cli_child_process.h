// ChildProcess: a program this command starts and supervises (`bench pd`'s
// instances, `cluster up`'s etcd, store master, instances and front), its
// output in a log file. The destructor stops it: SIGTERM, then SIGKILL after
// `grace_s`, and reaps it. With die_with_parent it also dies if this process
// is killed (-9 included), so a supervisor never leaves orphans.
// Thread-compatible (one owner).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace crescent::cli {

// The running `crescent` binary (/proc/self/exe); throws CommandError.
std::string SelfExe();

// Checked by every Wait* below while it waits: true stops the wait with a
// CommandError ("interrupted"), e.g. a SIGINT pending for a supervisor that
// blocks it. Process-wide; set it before any wait.
void SetWaitInterrupt(std::function<bool()> interrupted);

class ChildProcess {
 public:
  // Starts argv (argv[0] on PATH; "" for this binary) with extra_env, output
  // appended to log (truncated first unless `append`); throws CommandError.
  ChildProcess(std::vector<std::string> argv, std::string log, std::vector<std::string> extra_env = {},
               bool die_with_parent = true, bool append = false);
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log() const { return log_; }
  // Reaps it if it exited: false then (exit_status() says how).
  bool Alive();
  std::string exit_status() const { return exit_; }
  // Until GET /health on 127.0.0.1:port answers 200; throws CommandError
  // with the log's tail if it exits or takes over `seconds`.
  void WaitHealthy(int port, double seconds);
  // Until the log matches `pattern` (ECMAScript regex): its first group, or
  // the whole match; throws CommandError as WaitHealthy.
  std::string WaitForLog(const std::string& pattern, double seconds);
  // Until a TCP connect to 127.0.0.1:port succeeds; throws as WaitHealthy.
  void WaitListening(int port, double seconds);
  void Stop(double grace_s = 10);
  void Terminate();  // SIGTERM, no wait (Stop then waits)
  std::string LogTail(size_t bytes = 600) const;

 private:
  [[noreturn]] void Fail(const std::string& what) const;
  pid_t pid_ = -1;
  std::string log_, exit_, name_;
};

}  // namespace crescent::cli
