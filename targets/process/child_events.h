// Delivers wait statuses of traced threads to their owners from the Asio
// event loop. SIGCHLD is blocked in every thread (see block_sigchld()) and
// read from a signalfd; on each notification we reap with
// waitid(P_ALL, WNOHANG | __WALL) until nothing is left, so the loop never
// blocks in a wait. (waitid, not waitpid(-1): what the child reports is
// the same, and gdb.threads/attach-slow-waitpid's preload, which lets
// waitpid(-1, WNOHANG) answer once a second to mimic a loaded kernel,
// stretched an attach of five threads past gdb's 6 s patience.) Statuses for threads nobody has claimed yet (a clone
// child that stops before its parent's clone event is seen) are kept until
// someone watches that tid.
#pragma once
#include <signal.h>
#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace dbgstub {

// Must run in main() before any other thread exists.
void block_sigchld();

// The waitpid()-style status of what waitid() reported in `si` (exit,
// death by a signal, core dump, signal-delivery, group or ptrace-event
// stop: for stops si_status is the kernel's whole exit code, ptrace event
// bits included).
int wait_status_of(const siginfo_t& si);

class ChildEvents {
 public:
  using Handler = std::function<void(pid_t tid, int status)>;
  explicit ChildEvents(asio::io_context& io);
  ~ChildEvents();
  ChildEvents(const ChildEvents&) = delete;
  ChildEvents& operator=(const ChildEvents&) = delete;

  // Routes statuses of `tid` to `h`. Statuses that arrived before are
  // delivered (posted) right away, in order.
  void watch(pid_t tid, Handler h);
  void unwatch(pid_t tid);
  // Reap now (without waiting for SIGCHLD): used after a kill so the exit
  // is seen promptly. Never blocks.
  void poll();
  // Called after each SIGCHLD's statuses are dispatched: some SIGCHLDs come
  // with no status to reap (a thread-group leader that exited while its
  // other threads live on is not waitable until they end).
  void on_sigchld(std::function<void()> f) { after_sigchld_ = std::move(f); }

 private:
  void arm();
  void dispatch(pid_t tid, int status);
  asio::io_context& io_;
  asio::posix::stream_descriptor fd_;
  std::map<pid_t, Handler> handlers_;
  std::map<pid_t, std::vector<int>> unclaimed_;
  std::function<void()> after_sigchld_;
};

}  // namespace dbgstub
