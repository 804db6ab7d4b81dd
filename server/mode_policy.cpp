#include "server/mode_policy.h"

namespace dbgstub {

KillDecision ModePolicy::kill(Mode mode, KillSource) {
  switch (mode) {
    case Mode::User:
      // WinDbg's user-mode .kill and GDB's kill agree: end the process now.
      return {KillDecision::Action::KillNow, ""};
    case Mode::Kernel:
      // A kill must never end the machine (QEMU's stub would): as WinDbg's
      // kernel-mode .kill, the process is ended the next time it runs.
      return {KillDecision::Action::Schedule, ""};
    case Mode::LocalKernel:
      return {KillDecision::Action::Refuse, ".kill is not supported in a local kernel session"};
  }
  return {KillDecision::Action::Refuse, "unknown session mode"};
}

Status ModePolicy::allows(Mode mode, Operation op) {
  if (op == Operation::HostFiles) {
    // vFile serves the files of the machine dbgstub runs on. In a user
    // session those are the debugged programs' files. A VM's are not, and
    // a VM's (or a local kernel's) debugger has not been given this host.
    if (mode == Mode::User) return ok_status();
    return make_error(1, "host file access (vFile) is for user-mode sessions only");
  }
  if (mode != Mode::LocalKernel) return ok_status();
  switch (op) {
    case Operation::Resume:
    case Operation::Interrupt:
      return make_error(1, op == Operation::Resume ? "continue and step are not supported in a local kernel session"
                                                    : "interrupt is not supported in a local kernel session");
    case Operation::WriteMemory:
    case Operation::WriteRegisters:
      return make_error(1, "writing memory or registers is not supported in a local kernel session");
    case Operation::Breakpoint:
    case Operation::Watchpoint:
      return make_error(1, "breakpoints and watchpoints are not supported in a local kernel session");
    case Operation::Run:
    case Operation::Attach:
      return make_error(1, "no processes can be started or attached in a local kernel session");
    case Operation::Detach:
      return ok_status();
    case Operation::HostFiles:
      break;  // decided above, for every mode
  }
  return ok_status();
}

}  // namespace dbgstub
