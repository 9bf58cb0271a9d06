#include "base/subprocess.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace crescent {
namespace {

// Runs argv with stdout into a pipe; returns (exit status, what it printed).
std::pair<int, std::string> RunChild(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto pid = SpawnProcess(argv, env, kDevNullFd, p[1], kInheritFd);
  close(p[1]);
  EXPECT_TRUE(pid.ok()) << pid.status().ToString();
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  if (pid.ok()) waitpid(*pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(SubprocessTest, EnvironmentIsMergedAndStdoutWired) {
  setenv("CRESCENT_SUBPROCESS_KEEP", "kept", 1);
  setenv("CRESCENT_SUBPROCESS_SET", "old", 1);
  auto [code, out] = RunChild({"sh", "-c", "echo $CRESCENT_SUBPROCESS_KEEP $CRESCENT_SUBPROCESS_SET $CRESCENT_SUBPROCESS_NEW"},
                         {"CRESCENT_SUBPROCESS_SET=new", "CRESCENT_SUBPROCESS_NEW=added"});
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "kept new added\n");
  unsetenv("CRESCENT_SUBPROCESS_KEEP");
  unsetenv("CRESCENT_SUBPROCESS_SET");
}

TEST(SubprocessTest, StdinFromDevNullAndMissingPrograms) {
  auto [code, out] = RunChild({"sh", "-c", "cat; echo end"}, {});
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "end\n");
  EXPECT_EQ(RunChild({"/nonexistent/crescent-no-such-program"}, {}).first, 127);
  EXPECT_FALSE(SpawnProcess({}, {}, kInheritFd, kInheritFd, kInheritFd).ok());
}

}  // namespace
}  // namespace crescent
