// Breakpoints: software ones as int3 bytes in process memory, hardware
// ones and watchpoints in the debug registers (debug_registers.cpp).
#include <unistd.h>

#include "targets/process/process_target.h"

namespace dbgstub {

// ---------------------------------------------------------------------------
// Breakpoints

bool ProcessTarget::exit_pending(int pid) const {
  auto it = procs_.find(pid);
  if (it != procs_.end() && it->second.kill_requested) return true;
  for (auto& ev : orphan_events_)
    if (ev.thread.pid == pid) return true;
  return false;
}

Status ProcessTarget::insert_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) {
  Process* p = find_process(pid);
  // gdb may still plant breakpoints in a process ended by ".kill" that it
  // has not yet been told about: nothing to do there.
  if (!p && exit_pending(pid)) return ok_status();
  if (!p) return make_error(3, "no such process");
  if (type == BreakpointType::Software) {
    if (auto it = p->breakpoints.find(addr); it != p->breakpoints.end()) {
      // Already ours, but a vfork child shares its parent's memory: the
      // other one's removal may have put the original byte back.
      uint8_t now = 0;
      uint8_t int3 = 0xCC;
      if (p->mem_fd >= 0 && ::pread(p->mem_fd, &now, 1, static_cast<off_t>(addr)) == 1 && now != 0xCC &&
          ::pwrite(p->mem_fd, &int3, 1, static_cast<off_t>(addr)) != 1)
        return make_error(14, "cannot write a breakpoint");
      return ok_status();
    }
    uint8_t orig = 0;
    if (p->mem_fd < 0 || ::pread(p->mem_fd, &orig, 1, static_cast<off_t>(addr)) != 1)
      return make_error(14, "cannot read memory for a breakpoint");
    uint8_t int3 = 0xCC;
    if (::pwrite(p->mem_fd, &int3, 1, static_cast<off_t>(addr)) != 1)
      return make_error(14, "cannot write a breakpoint");
    p->breakpoints[addr] = orig;
    p->removed_breakpoints.erase(addr);
    return ok_status();
  }
  int len = type == BreakpointType::Hardware ? 1 : static_cast<int>(kind);
  auto st = p->debug_regs.add(static_cast<int>(type), addr, len);
  if (!st) return st;
  for (auto& [tid, t] : threads_)
    if (t.pid == p->pid && !t.fresh) p->debug_regs.apply(tid);
  return ok_status();
}

Status ProcessTarget::remove_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) {
  Process* p = find_process(pid);
  if (!p && exit_pending(pid)) return ok_status();
  if (!p) return make_error(3, "no such process");
  if (type == BreakpointType::Software) {
    auto it = p->breakpoints.find(addr);
    if (it == p->breakpoints.end()) return ok_status();
    uint8_t orig = it->second;
    p->breakpoints.erase(it);
    if (p->removed_breakpoints.size() > 4096) p->removed_breakpoints.clear();
    p->removed_breakpoints.insert(addr);
    if (p->mem_fd < 0 || ::pwrite(p->mem_fd, &orig, 1, static_cast<off_t>(addr)) != 1)
      return make_error(14, "cannot remove a breakpoint");
    return ok_status();
  }
  int len = type == BreakpointType::Hardware ? 1 : static_cast<int>(kind);
  auto st = p->debug_regs.remove(static_cast<int>(type), addr, len);
  if (!st) return st;
  for (auto& [tid, t] : threads_)
    if (t.pid == p->pid && !t.fresh) p->debug_regs.apply(tid);
  return ok_status();
}

}  // namespace dbgstub
