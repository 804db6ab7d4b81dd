#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace dbgstub {

// `dbgstub --selftest`: checks, on this machine, the parts dbgstub needs
// that its unit tests cannot vouch for here - that both codecs round-trip
// every byte value, and that this process may start a program under
// ptrace, see it stop through the event loop, read its registers, step it
// and see it exit (a container without CAP_SYS_PTRACE, or a seccomp
// profile that forbids ptrace, fails that one). Prints what gdbserver's
// --selftest prints ("Running selftest NAME.", "Ran N unit tests, M
// failed"), which GDB's testsuite (gdb.server/unittest.exp) reads.
// Returns the exit status: 0 when every check passed.
int run_self_tests(std::ostream& out);

// A named check: what went wrong, or "" when it passed.
struct SelfCheck {
  const char* name;
  std::function<std::string()> run;
};
// Runs `checks` in order and prints them as run_self_tests does.
int run_checks(std::ostream& out, const std::vector<SelfCheck>& checks);

}  // namespace dbgstub
