// `dbgstub ctl`: the client of a lab's control socket ("control" in the lab
// file; server/lab/control_socket.h):
//   dbgstub ctl --socket PATH status [--json]
//   dbgstub ctl --socket PATH kill VM PID
//   dbgstub ctl --socket PATH reload
// A subcommand, recognised only as the very first argument: gdbserver's
// command lines ([HOST]:PORT PROG ...) never start with "ctl", so GDB's
// testsuite and scripts written for gdbserver are not affected.
#pragma once
#include <string>
#include <vector>

namespace dbgstub {

// `args`: what follows "ctl". Prints the reply; returns the exit code:
// 0 done, 1 the server refused (its error is printed), 2 a bad command
// line or no server on the socket.
int run_ctl(const std::vector<std::string>& args);

}  // namespace dbgstub
