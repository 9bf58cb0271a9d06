#include "cli/cli_util.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <ctime>

#include "base/logging.h"
#include "cli/commands.h"

namespace crescent::cli {

Result<uint64_t> ParseSize(const std::string& text) {
  if (text.empty()) return InvalidArgument("empty size");
  uint64_t mult = 1;
  std::string num = text;
  char suffix = static_cast<char>(std::toupper(static_cast<unsigned char>(num.back())));
  if (suffix == 'B' && num.size() > 1) {
    num.pop_back();
    suffix = static_cast<char>(std::toupper(static_cast<unsigned char>(num.back())));
  }
  if (suffix == 'K' || suffix == 'M' || suffix == 'G' || suffix == 'T') {
    mult = suffix == 'K' ? 1ull << 10 : suffix == 'M' ? 1ull << 20 : suffix == 'G' ? 1ull << 30 : 1ull << 40;
    num.pop_back();
  }
  if (num.empty() || num.size() > 15 || num.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("bad size '" + text + "' (expected e.g. 4096, 64K, 1M, 2G)");
  }
  uint64_t v = std::stoull(num) * mult;
  if (v == 0) return InvalidArgument("size '" + text + "' is zero");
  return v;
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTermination(const std::function<void()>& tick) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec period{0, 100'000'000};
  for (;;) {
    const int sig = sigtimedwait(&set, nullptr, &period);
    if (sig == SIGINT || sig == SIGTERM) return sig;
    if (tick) tick();
  }
}

namespace {
template <typename T>
Result<std::vector<T>> ParseList(const std::string& text, const std::string& flag, T min_value) {
  std::vector<T> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    T v{};
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < min_value) {
      return InvalidArgument(flag + ": '" + item + "' is not a valid value");
    }
    out.push_back(v);
    i = j + 1;
  }
  return out;
}
}  // namespace

Result<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& flag) {
  return ParseList<int32_t>(text, flag, 0);
}

Result<std::vector<int64_t>> ParseIntList(const std::string& text, const std::string& flag) {
  return ParseList<int64_t>(text, flag, 1);
}

Result<std::unique_ptr<engine::ModelRunner>> LoadModel(const std::string& dir, const std::string& dtype,
                                                       const std::string& quantization) {
  auto t0 = std::chrono::steady_clock::now();
  int last_pct = -1;
  engine::RunnerOptions opts;
  ASSIGN_OR_RETURN(opts.dtype, engine::ParseComputeDType(dtype));
  opts.quantization = quantization;
  opts.progress = [&](int64_t done, int64_t total) {
    int pct = static_cast<int>(100 * done / total);
    if (pct / 25 != last_pct / 25 || done == total) {
      LOG_INFO("loading {}: {}%", dir, pct);
      last_pct = pct;
    }
  };
  auto r = engine::ModelRunner::Load(dir, opts);
  if (r.ok()) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    LOG_INFO("loaded {} in {:.2f} s ({:.1f} MB of weights)", dir, s, static_cast<double>((*r)->weight_bytes_per_step()) / 1e6);
  }
  return r;
}

int FreeLocalPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw CommandError("no free port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace crescent::cli
