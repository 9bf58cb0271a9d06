// CHECK: abort on a broken invariant (a bug), with file, line and a message.
// Expected failures return Status instead (base/status.h).
//
//   CHECK(n > 0) << "n=" << n;
//   CHECK_EQ(a.size(), b.size());
//   DCHECK(...) is compiled out in NDEBUG builds.
#pragma once

#include <sstream>

namespace crescent::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return os_; }

 private:
  std::ostringstream os_;
};

// Lets `CHECK(x) << ...` be a void expression in a ternary.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace crescent::internal

#define CHECK(cond)                 \
  (cond) ? (void)0                  \
         : ::crescent::internal::Voidify() & \
               ::crescent::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()

#define CHECK_OP(a, b, op) CHECK((a)op(b)) << "(" << (a) << " vs " << (b) << ") "
#define CHECK_EQ(a, b) CHECK_OP(a, b, ==)
#define CHECK_NE(a, b) CHECK_OP(a, b, !=)
#define CHECK_LT(a, b) CHECK_OP(a, b, <)
#define CHECK_LE(a, b) CHECK_OP(a, b, <=)
#define CHECK_GT(a, b) CHECK_OP(a, b, >)
#define CHECK_GE(a, b) CHECK_OP(a, b, >=)

#ifdef NDEBUG
#define DCHECK(cond) \
  while (false) CHECK(cond)
#else
#define DCHECK(cond) CHECK(cond)
#endif
