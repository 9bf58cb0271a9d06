// Clang's thread-safety analysis (-Wthread-safety) for crescent's locks: a
// Mutex that is a capability, a scoped MutexLock, a CondVar that waits on a
// held Mutex, and the attribute macros (GUARDED_BY, REQUIRES, ...). Under
// clang a field marked GUARDED_BY(mu_) read or written without mu_ held is a
// compile error (scripts/build.sh thread-safety builds with -Werror); under
// GCC the macros expand to nothing and the types are thin wrappers of
// std::mutex / std::condition_variable with no cost.
//
// Thread-safety: Mutex and CondVar are what they say; MutexLock is owned by
// the thread that made it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

// GUARDED_BY, PT_GUARDED_BY and NO_THREAD_SAFETY_ANALYSIS are spelled token
// for token as in absl/base/internal/thread_annotations.h (which gRPC's
// headers pull in), so that either header may come first: identical macro
// redefinitions are allowed, different ones are an error.
#if defined(__clang__)
#define THREAD_ANNOTATION_ATTRIBUTE__(x) __attribute__((x))
#define CRESCENT_TSA(x) __attribute__((x))
#else
#define THREAD_ANNOTATION_ATTRIBUTE__(x)
#define CRESCENT_TSA(x)
#endif
#define GUARDED_BY(x) THREAD_ANNOTATION_ATTRIBUTE__(guarded_by(x))
#define PT_GUARDED_BY(x) THREAD_ANNOTATION_ATTRIBUTE__(pt_guarded_by(x))
#define NO_THREAD_SAFETY_ANALYSIS THREAD_ANNOTATION_ATTRIBUTE__(no_thread_safety_analysis)

#define CAPABILITY(x) CRESCENT_TSA(capability(x))
#define SCOPED_CAPABILITY CRESCENT_TSA(scoped_lockable)
#define REQUIRES(...) CRESCENT_TSA(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) CRESCENT_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) CRESCENT_TSA(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) CRESCENT_TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) CRESCENT_TSA(locks_excluded(__VA_ARGS__))
#define RETURN_CAPABILITY(x) CRESCENT_TSA(lock_returned(x))

namespace crescent {

class CondVar;

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope (std::lock_guard, visible to the analysis).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Lets go for a while (I/O, a callback) and takes it again.
  void Unlock() RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// A condition variable over a Mutex the caller holds (as std::condition_variable
// over a std::unique_lock): Wait releases it while blocked and holds it again
// on return. Spurious wake-ups happen; the predicate forms loop.
class CondVar {
 public:
  void Wait(Mutex& mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lk(mu.mu_, std::adopt_lock);
    cv_.wait(lk);
    lk.release();
  }
  // The predicate runs with `mu` held: write it [&]() REQUIRES(mu_) { ... } so
  // that its body is checked (the call from here is not: the analysis cannot
  // tie the parameter to the caller's field).
  template <class Pred>
  void Wait(Mutex& mu, Pred pred) REQUIRES(mu) NO_THREAD_SAFETY_ANALYSIS {
    while (!pred()) Wait(mu);
  }
  // False when the deadline passed (the mutex is held again either way).
  bool WaitUntil(Mutex& mu, std::chrono::steady_clock::time_point deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lk(mu.mu_, std::adopt_lock);
    const bool woke = cv_.wait_until(lk, deadline) == std::cv_status::no_timeout;
    lk.release();
    return woke;
  }
  // pred() once the deadline passed: true when it came true in time.
  template <class Pred>
  bool WaitUntil(Mutex& mu, std::chrono::steady_clock::time_point deadline, Pred pred) REQUIRES(mu)
      NO_THREAD_SAFETY_ANALYSIS {
    while (!pred()) {
      if (!WaitUntil(mu, deadline)) return pred();
    }
    return true;
  }
  // False when `d` passed without a notification.
  template <class Rep, class Period>
  bool WaitFor(Mutex& mu, std::chrono::duration<Rep, Period> d) REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  }
  template <class Rep, class Period, class Pred>
  bool WaitFor(Mutex& mu, std::chrono::duration<Rep, Period> d, Pred pred) REQUIRES(mu) NO_THREAD_SAFETY_ANALYSIS {
    return WaitUntil(mu, std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(d),
                     pred);
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace crescent
