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

int wait_status_of(const siginfo_t& si) {
  switch (si.si_code) {
    case CLD_EXITED: return (si.si_status & 0xff) << 8;
    case CLD_KILLED: return si.si_status & 0x7f;
    case CLD_DUMPED: return (si.si_status & 0x7f) | 0x80;
    case CLD_TRAPPED:
    case CLD_STOPPED: return (si.si_status << 8) | 0x7f;
    default: return 0xffff;  // CLD_CONTINUED (not asked for)
  }
}

void ChildEvents::poll() {
  for (;;) {
    siginfo_t si{};
    if (::waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | __WALL) != 0 || si.si_pid == 0) break;
    dispatch(si.si_pid, wait_status_of(si));
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
