// Making things right after a dbgstub that died holding a VM (issue #25):
// QEMU's gdbstub keeps the VM halted once its client is gone, with the
// breakpoints it was given, and the terminations a debugger had scheduled
// would be lost. At start, before anything that needs the guest to run
// (the guest agent answers only while it runs), recover_vm reads what the
// state file (vm_state.h) says and undoes it; the hooks keep that file up
// to date from then on.
#pragma once
#include <asio/io_context.hpp>
#include <string>

#include "common/result.h"
#include "server/lab/vm_state.h"
#include "server/termination_schedule.h"
#include "targets/target.h"
#include "targets/vm/vm_target.h"

namespace dbgstub {

// The state file follows the target's hold (attached, breakpoints).
void record_hold(VmTarget& vm, VmStateFile& file);
// ... and the schedule's pending terminations.
void record_terminations(TerminationSchedule& schedule, VmStateFile& file);

// If `prior` (what the last dbgstub left) needs it: connects to the
// gdbstub (QEMU halts the VM, if it was not halted already), takes out the
// breakpoints recorded, detaches so the VM runs, then ends the recorded
// processes inside the guest as a debugger's detach does (each re-checked
// first: the guest's pid must still be that program), running the event
// loop until the guest agent has answered for each. Logs what it did.
// `guest` may be null (no agent: the terminations can't be carried out,
// which is logged). An error: the VM could not be reached or let go.
Status recover_vm(asio::io_context& io, VmTarget& vm, VmStateFile& file, const VmState& prior,
                  GuestProcesses* guest);

}  // namespace dbgstub
