#include "engine/stop_checker.h"

#include <gtest/gtest.h>

namespace crescent::engine {
namespace {

TEST(StopCheckerTest, HoldsBackPossibleStarts) {
  StopChecker s({"STOP"}, false);
  EXPECT_EQ(s.Push("hello S"), "hello ");
  EXPECT_EQ(s.Push("T"), "");
  EXPECT_EQ(s.Push("x"), "STx");
  EXPECT_EQ(s.Push(" and ST"), " and ");
  EXPECT_EQ(s.Push("OP tail"), "");
  EXPECT_TRUE(s.matched());
  EXPECT_EQ(s.Push("more"), "");
}

TEST(StopCheckerTest, IncludeAndFlush) {
  StopChecker inc({"\n\n", "END"}, true);
  EXPECT_EQ(inc.Push("a\n"), "a");
  EXPECT_EQ(inc.Push("\nb"), "\n\n");
  StopChecker none({}, false);
  EXPECT_EQ(none.Push("abc"), "abc");
  StopChecker f({"XYZ"}, false);
  EXPECT_EQ(f.Push("abcX"), "abc");
  EXPECT_EQ(f.Flush("Y"), "XY");
}

}  // namespace
}  // namespace crescent::engine
