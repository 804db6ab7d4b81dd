#include "server/lab/vm_recovery.h"

#include <spdlog/spdlog.h>

namespace dbgstub {

void record_hold(VmTarget& vm, VmStateFile& file) {
  vm.set_hold_observer([&file](const VmHold& h) {
    std::vector<PlantedBreakpoint> bps;
    for (const auto& b : h.breakpoints) bps.push_back({static_cast<int>(b.type), b.addr, b.kind});
    file.set_hold(h.attached, std::move(bps));
  });
}

void record_terminations(TerminationSchedule& schedule, VmStateFile& file) {
  schedule.set_observer([&file](const std::vector<GuestProcess>& ps) {
    std::vector<PendingTermination> out;
    for (const auto& p : ps) out.push_back({p.address, p.pid, p.name, p.start_ns});
    file.set_terminations(std::move(out));
  });
}

Status recover_vm(asio::io_context& io, VmTarget& vm, VmStateFile& file, const VmState& prior,
                  GuestProcesses* guest) {
  if (!prior.needs_recovery()) return ok_status();
  const std::string& name = file.identity().name;
  spdlog::warn("{}: an earlier dbgstub ended without letting the VM go ({}, {} breakpoint{}, {} pending "
               "termination{}, from {}): recovering",
               name, prior.held ? "it held the VM" : "it did not hold the VM", prior.breakpoints.size(),
               prior.breakpoints.size() == 1 ? "" : "s", prior.terminations.size(),
               prior.terminations.size() == 1 ? "" : "s", file.path());
  if (prior.held || !prior.breakpoints.empty()) {
    if (auto st = vm.connect(); !st) return make_error(st.error().code, "recovering the VM: " + st.error().message);
    // QEMU forgets its breakpoints when a new client asks why it stopped
    // ('?', which the handshake sends); taken out one by one all the same,
    // for a stub that does not.
    for (const auto& b : prior.breakpoints) {
      auto st = vm.remove_breakpoint(0, static_cast<BreakpointType>(b.type), b.address, b.kind);
      spdlog::info("{}: recovery: breakpoint (type {}) at {:#x}: {}", name, b.type, b.address,
                   st ? std::string("removed") : "not removed: " + st.error().message);
    }
    vm.release_all();
    if (vm.has_processes()) return make_error(EIO, "recovering the VM: it could not be let go");
    spdlog::warn("{}: recovery: the VM runs again", name);
  }
  if (prior.terminations.empty()) return ok_status();
  if (!guest) {
    spdlog::error("{}: recovery: {} scheduled termination{} cannot be carried out: no guest agent (qga=PATH)", name,
                  prior.terminations.size(), prior.terminations.size() == 1 ? "" : "s");
    file.set_terminations({});
    return ok_status();
  }
  // The same schedule a debugger's detach runs, so the same checks and the
  // same outcome lines in the log.
  TerminationSchedule schedule;
  record_terminations(schedule, file);
  for (const auto& t : prior.terminations) {
    GuestProcess p;
    p.address = t.address;
    p.pid = t.pid;
    p.name = t.name;
    p.start_ns = t.start_time;
    if (auto r = schedule.schedule(p); !r) spdlog::warn("{}: recovery: {}", name, r.error().message);
  }
  schedule.run(*guest, [&name](const std::string& line) {
    spdlog::warn("{}: recovery: {}", name, line.substr(0, line.size() - 1));
  });
  // Each termination ends within the guest agent's own deadline.
  while (schedule.busy() && io.run_one()) {
  }
  schedule.set_observer(nullptr);
  return ok_status();
}

}  // namespace dbgstub
