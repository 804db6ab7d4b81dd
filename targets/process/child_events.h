// Delivers wait statuses of traced threads to their owners from the Asio
// event loop. SIGCHLD is blocked in every thread (see block_sigchld()) and
// read from a signalfd; on each notification we reap with
// waitpid(-1, WNOHANG | __WALL) until nothing is left, so the loop never
// blocks in waitpid. Statuses for threads nobody has claimed yet (a clone
// child that stops before its parent's clone event is seen) are kept until
// someone watches that tid.
#pragma once
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
