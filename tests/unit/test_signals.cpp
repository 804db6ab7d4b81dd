#include <doctest/doctest.h>
#include <signal.h>

#include "protocol/rsp/signals.h"

using namespace dbgstub::rsp;

TEST_CASE("GDB signal numbers differ from Linux ones") {
  CHECK(gdb_signal_from_host(SIGTRAP) == 5);
  CHECK(gdb_signal_from_host(SIGUSR1) == 30);
  CHECK(gdb_signal_from_host(SIGSTOP) == 17);
  CHECK(gdb_signal_from_host(SIGCHLD) == 20);
  CHECK(gdb_signal_from_host(SIGSEGV) == 11);
  CHECK(gdb_signal_from_host(34) == 46);  // SIGRTMIN+0 on glibc is 34
  for (int s = 1; s < 65; ++s) {
    if (s == SIGSTKFLT || s == 32 || s == 33) continue;
    CHECK_MESSAGE(host_signal_from_gdb(gdb_signal_from_host(s)) == s, "signal ", s);
  }
  CHECK(host_signal_from_gdb(9999) == 0);
}
