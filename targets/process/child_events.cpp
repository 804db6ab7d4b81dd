#include "targets/process/child_events.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace dbgstub {

void block_sigchld() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

ChildEvents::ChildEvents(asio::io_context& io) : io_(io), fd_(io) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    spdlog::critical("signalfd: {}", std::strerror(errno));
    std::abort();
  }
  fd_.assign(fd);
  arm();
}

ChildEvents::~ChildEvents() = default;

void ChildEvents::arm() {
  fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const asio::error_code& ec) {
    if (ec) return;  // cancelled at shutdown
    // Drain the signalfd; the siginfo itself is useless because several
    // SIGCHLDs coalesce into one.
    signalfd_siginfo si;
    while (::read(fd_.native_handle(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    poll();
    if (after_sigchld_) after_sigchld_();
    arm();
  });
}

void ChildEvents::poll() {
  for (;;) {
    int status = 0;
    pid_t tid = ::waitpid(-1, &status, WNOHANG | __WALL | WUNTRACED);
    if (tid <= 0) break;
    dispatch(tid, status);
  }
}

void ChildEvents::dispatch(pid_t tid, int status) {
  auto it = handlers_.find(tid);
  if (it == handlers_.end()) {
    spdlog::trace("wait status {:#x} for unclaimed tid {}", status, tid);
    if (!WIFEXITED(status) && !WIFSIGNALED(status)) unclaimed_[tid].push_back(status);
    return;
  }
  // Copy: the handler may unwatch itself.
  Handler h = it->second;
  h(tid, status);
}

void ChildEvents::watch(pid_t tid, Handler h) {
  handlers_[tid] = std::move(h);
  auto it = unclaimed_.find(tid);
  if (it == unclaimed_.end()) return;
  std::vector<int> statuses = std::move(it->second);
  unclaimed_.erase(it);
  for (int st : statuses) {
    asio::post(io_, [this, tid, st] { dispatch(tid, st); });
  }
}

void ChildEvents::unwatch(pid_t tid) { handlers_.erase(tid); }

}  // namespace dbgstub
