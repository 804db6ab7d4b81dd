// GDB's signal numbers (gdb/signals.def) are not Linux's: SIGUSR1 is 10 on
// Linux and 30 on the wire. Every signal in a stop reply, C/S/vCont action
// or QPassSignals list goes through these.
#pragma once

namespace dbgstub::rsp {

int gdb_signal_from_host(int host_signal);   // unknown -> 143 (GDB_SIGNAL_UNKNOWN)
int host_signal_from_gdb(int gdb_signal);    // unknown -> 0

}  // namespace dbgstub::rsp
