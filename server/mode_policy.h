// The one place that decides what a debugger's request means in each
// session mode. Targets only offer primitives (kill now, resume, write);
// whether and how a request maps onto them is decided here.
#pragma once
#include <string>

#include "common/result.h"
#include "targets/target.h"

namespace dbgstub {

// Where a request to end a process came from.
enum class KillSource { PacketK, PacketVKill, MonitorKill };

struct KillDecision {
  enum class Action { KillNow, Schedule, Refuse };
  Action action = Action::Refuse;
  std::string message;  // shown to the user on Refuse (and logged)
};

enum class Operation { Resume, Interrupt, WriteMemory, WriteRegisters, Breakpoint, Watchpoint, Detach, Run, Attach, HostFiles };

class ModePolicy {
 public:
  // What a kill request means in `mode`.
  static KillDecision kill(Mode mode, KillSource source);
  // Whether `op` is allowed at all in `mode`; the error text says why not.
  static Status allows(Mode mode, Operation op);
};

}  // namespace dbgstub
