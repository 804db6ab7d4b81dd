// Kernel-mode target: a QEMU VM, through QEMU's built-in gdbstub
// (qemu-system-x86_64 -gdb tcp:HOST:PORT). dbgstub is that stub's client
// and serves debuggers the machine: one thread per vCPU, registers and
// memory as the vCPU sees them, breakpoints and watchpoints, resume,
// interrupt.
//
// What it never does: send 'k' or vKill to QEMU (either ends the whole
// VM). When the debugger leaves, dbgstub removes the breakpoints it
// inserted and detaches ('D'), so the VM runs on; the next debugger's first
// request connects again (which halts the VM, as connecting gdb to QEMU
// directly does).
//
// Everything runs on the one event loop. Requests while the VM is halted
// are synchronous with a deadline (see gdbstub_connection.h); the stop
// reply to a resume is awaited asynchronously.
#pragma once
#include <asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "targets/kernel_call.h"
#include "targets/target.h"

namespace dbgstub {

// dbgstub's hold on a VM, for whoever must be able to undo it after a crash
// (server/lab/vm_state.h): QEMU keeps a VM halted once its gdbstub client
// is gone, and keeps the breakpoints it was given.
struct VmHold {
  struct Breakpoint {
    BreakpointType type;
    uint64_t addr;
    uint64_t kind;
  };
  bool attached = false;  // dbgstub is the gdbstub's client
  std::vector<Breakpoint> breakpoints;
};

class VmCallControl;

class VmTarget : public Target, public KernelCaller {
 public:
  using HoldObserver = std::function<void(const VmHold&)>;

  VmTarget(asio::io_context& io, std::string host, uint16_t port,
           std::chrono::milliseconds timeout = std::chrono::seconds(3));
  ~VmTarget() override;

  // Connects and learns what the stub offers (features, vCPUs, registers).
  // The VM is halted afterwards: QEMU stops it when a client connects.
  Status connect();
  void set_log_packets(bool on);
  // The VM's name in errors and the log (a lab entry's name; none alone).
  void set_name(std::string name);
  // Told after every change of the hold: attached, breakpoints planted or
  // removed, detached.
  void set_hold_observer(HoldObserver o);

  Mode mode() const override { return Mode::Kernel; }
  std::string describe() const override;
  // capabilities(): none, Target's default. A machine has no executable,
  // auxv, shared libraries, siginfo or fork and exec of a process, and
  // QEMU's gdbstub steps one instruction at a time (no range stepping).
  void set_stop_handler(StopHandler h) override;

  // No guest processes yet (that needs a walk of the guest's task list).
  std::vector<ProcessInfo> processes() const override { return {}; }
  // "The machine is being debugged": true while dbgstub is attached to the
  // stub, so the dispatcher never takes the empty process list for "nothing
  // left to debug". False once released, which also never reconnects.
  bool has_processes() const override;
  Status reachable() override;
  std::vector<ThreadRef> threads() const override;   // {pid, vCPU}: pid 1 unless QEMU says otherwise
  bool thread_alive(ThreadRef t) const override;
  std::string thread_name(ThreadRef t) const override;
  std::optional<StopEvent> last_stop() const override;
  bool running() const override;
  // Its gdbstub can't be reached: the last connect failed, or the link
  // was lost mid-session (until the debugger leaves).
  bool unreachable() const;

  std::string target_xml() const override;
  Result<std::string> read_registers(ThreadRef t) override;
  Status write_registers(ThreadRef t, const std::string& data) override;
  Result<std::string> read_register(ThreadRef t, int regno) override;
  Status write_register(ThreadRef t, int regno, const std::string& value) override;
  std::vector<int> expedited_registers() const override;

  // pid is ignored: memory as the vCPU last selected for registers sees it.
  Result<std::string> read_memory(int pid, uint64_t addr, std::size_t len) override;
  Status write_memory(int pid, uint64_t addr, const std::string& data) override;
  Status insert_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) override;
  Status remove_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) override;

  Status resume(const std::vector<ResumeAction>& actions) override;
  Status interrupt() override;

  // Refused: ending a guest process is scheduled by the server's policy.
  Status kill_process(int pid, const KillOptions& how = {}) override;
  Status detach_process(int pid) override;
  void release_all() override;

  // Kernel mode's view of the guest OS (!process, .kill), when known.
  void set_guest(GuestProcesses* guest) { guest_ = guest; }
  GuestProcesses* guest_processes() override { return guest_; }
  // The guest view's commands (ln, x): set_guest comes before serving.
  std::vector<TargetCommand> commands() override { return guest_ ? guest_->commands() : std::vector<TargetCommand>{}; }
  // QEMU numbers its vCPU threads from 1.
  std::optional<unsigned> cpu_of(ThreadRef t) const override {
    if (t.tid <= 0) return std::nullopt;
    return static_cast<unsigned>(t.tid - 1);
  }

  // A call into the guest kernel from a safe point (vm_kernel_call.h),
  // while the VM is halted (a running one is stopped first: only when its
  // debugger has gone). The debugger's breakpoints are out meanwhile.
  Result<uint64_t> call_kernel(const KernelCall& call) override;

 private:
  friend class VmCallControl;
  struct Impl;
  // The const queries above may connect again after a release (the next
  // debugger's first request): that state lives behind this pointer.
  std::unique_ptr<Impl> impl_;
  GuestProcesses* guest_ = nullptr;
};

}  // namespace dbgstub
