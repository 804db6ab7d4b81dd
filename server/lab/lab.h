// Kernel mode on QEMU VMs: one VM (--vm) or a lab of them (--config FILE),
// each on a VmHost of its own behind one FrontDoor. A lab also has its
// control socket ("control", server/lab/control_socket.h) and reloads its
// file on SIGHUP or `dbgstub ctl reload`. Returns the exit code.
#pragma once
#include "server/app/options.h"

namespace dbgstub {

int serve_vm(const Options& opts);
int serve_lab(const Options& opts);

}  // namespace dbgstub
