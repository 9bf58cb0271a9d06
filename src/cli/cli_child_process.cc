#include "cli/cli_child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <thread>

#include "base/file.h"
#include "base/subprocess.h"
#include "cli/cli_http_client.h"
#include "cli/cli_util.h"
#include "cli/commands.h"

namespace crescent::cli {

std::string SelfExe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw CommandError("cannot find this program (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

namespace {
std::function<bool()>& WaitInterrupt() {
  static std::function<bool()> f;
  return f;
}
void CheckInterrupt() {
  if (WaitInterrupt() && WaitInterrupt()()) throw CommandError("interrupted");
}
}  // namespace

void SetWaitInterrupt(std::function<bool()> interrupted) { WaitInterrupt() = std::move(interrupted); }

void ChildProcess::Terminate() {
  if (pid_ > 0) ::kill(pid_, SIGTERM);
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log, std::vector<std::string> extra_env,
                           bool die_with_parent, bool append)
    : log_(std::move(log)) {
  if (argv.empty()) throw CommandError("ChildProcess: no program");
  if (argv[0].empty()) argv[0] = SelfExe();
  name_ = argv[0].substr(argv[0].rfind('/') + 1) + (argv.size() > 1 ? " " + argv[1] : "");
  const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC) | O_CLOEXEC, 0644);
  if (fd < 0) throw CommandError("cannot write " + log_);
  Result<pid_t> pid = SpawnProcess(argv, extra_env, kDevNullFd, fd, fd, die_with_parent);
  ::close(fd);
  pid_ = ValueOrThrow(std::move(pid));
}

bool ChildProcess::Alive() {
  if (pid_ <= 0) return false;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r != pid_) return true;
  pid_ = -1;
  exit_ = WIFSIGNALED(st) ? "killed by signal " + std::to_string(WTERMSIG(st))
                          : "exited with status " + std::to_string(WEXITSTATUS(st));
  return false;
}

std::string ChildProcess::LogTail(size_t bytes) const {
  Result<std::string> text = ReadFileToString(log_);
  if (!text.ok()) return "";
  return text->substr(text->size() > bytes ? text->size() - bytes : 0);
}

void ChildProcess::Fail(const std::string& what) const {
  throw CommandError(name_ + " " + what + " (log " + log_ + "): " + LogTail());
}

void ChildProcess::WaitHealthy(int port, double seconds) {
  const HttpUrl url{"127.0.0.1", static_cast<uint16_t>(port), ""};
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    HttpCall c;
    Result<HttpReply> r = c.Run(url, "GET", "/health", "", "", 2);
    if (r.ok() && r->status == 200) return;
    if (!Alive()) Fail("did not start: " + exit_);
    CheckInterrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Fail("did not answer /health in time");
}

std::string ChildProcess::WaitForLog(const std::string& pattern, double seconds) {
  const std::regex re(pattern);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    Result<std::string> text = ReadFileToString(log_);
    std::smatch m;
    if (text.ok() && std::regex_search(*text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
    if (!Alive()) Fail("did not start: " + exit_);
    CheckInterrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Fail("did not log '" + pattern + "' in time");
}

void ChildProcess::WaitListening(int port, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    if (fd >= 0) ::close(fd);
    if (ok) return;
    if (!Alive()) Fail("did not start: " + exit_);
    CheckInterrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Fail("did not listen on port " + std::to_string(port) + " in time");
}

void ChildProcess::Stop(double grace_s) {
  if (pid_ <= 0) return;  // exited (and reaped) already
  ::kill(pid_, SIGTERM);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  while (std::chrono::steady_clock::now() < end) {
    if (!Alive()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  exit_ = "killed (SIGKILL after " + std::to_string(grace_s) + " s)";
}

}  // namespace crescent::cli
