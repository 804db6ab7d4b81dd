// wait_status_of: what waitid() reports, turned into the status waitpid()
// gives for the same event. Real children: each event is first looked at
// with waitid(WNOWAIT), which leaves it waitable, then reaped with waitpid.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "targets/process/child_events.h"

using namespace dbgstub;

namespace {

// The next event of `pid`, both ways: {from waitid, from waitpid}.
std::pair<int, int> both_statuses(pid_t pid) {
  siginfo_t si{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WSTOPPED | WNOWAIT | __WALL) == 0);
  CHECK(si.si_pid == pid);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, __WALL | WUNTRACED) == pid);
  return {wait_status_of(si), status};
}

}  // namespace

TEST_CASE("wait_status_of: exit codes and deaths by a signal read as waitpid's") {
  pid_t exits = fork();
  REQUIRE(exits >= 0);
  if (exits == 0) _exit(201);
  auto [a, b] = both_statuses(exits);
  CHECK(a == b);
  CHECK(WIFEXITED(a));
  CHECK(WEXITSTATUS(a) == 201);

  pid_t killed = fork();
  REQUIRE(killed >= 0);
  if (killed == 0) {
    pause();
    _exit(0);
  }
  ::kill(killed, SIGKILL);
  auto [c, d] = both_statuses(killed);
  CHECK(c == d);
  CHECK(WIFSIGNALED(c));
  CHECK(WTERMSIG(c) == SIGKILL);
}

TEST_CASE("wait_status_of: group stops, signal stops and ptrace event stops read as waitpid's") {
  pid_t stopped = fork();
  REQUIRE(stopped >= 0);
  if (stopped == 0) {
    raise(SIGSTOP);
    _exit(0);
  }
  auto [a, b] = both_statuses(stopped);
  CHECK(a == b);
  CHECK(WIFSTOPPED(a));
  CHECK(WSTOPSIG(a) == SIGSTOP);
  ::kill(stopped, SIGKILL);
  both_statuses(stopped);

  pid_t traced = fork();
  REQUIRE(traced >= 0);
  if (traced == 0) {
    ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    raise(SIGUSR1);
    _exit(7);
  }
  auto [c, d] = both_statuses(traced);  // signal-delivery stop
  CHECK(c == d);
  CHECK(WSTOPSIG(c) == SIGUSR1);
  REQUIRE(ptrace(PTRACE_SETOPTIONS, traced, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACEEXIT)) == 0);
  REQUIRE(ptrace(PTRACE_CONT, traced, nullptr, nullptr) == 0);
  auto [e, f] = both_statuses(traced);  // PTRACE_EVENT_EXIT stop: event bits above the signal
  CHECK(e == f);
  CHECK(WSTOPSIG(e) == SIGTRAP);
  CHECK((e >> 16) == PTRACE_EVENT_EXIT);
  REQUIRE(ptrace(PTRACE_CONT, traced, nullptr, nullptr) == 0);
  auto [g, h] = both_statuses(traced);
  CHECK(g == h);
  CHECK(WEXITSTATUS(g) == 7);
}
