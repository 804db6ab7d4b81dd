// A Linux guest of a VM, as a kernel debugger meets it: processes read from
// its memory while it is halted (linux_tasks), and the guest agent, when
// there is one, to act inside it while it runs (qga_client). Symbols come
// from the kernel's kallsyms found in guest memory (kernel_finder, once the
// VM is halted), or else through the agent (fetch_symbols, before the
// debugger halts the VM); the task layout comes from the kernel's BTF, read
// from its memory (load_layout, once, while the VM is halted).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "targets/guest/linux_tasks.h"
#include "targets/local_kernel/local_kernel_internal.h"
#include "targets/guest/qga_client.h"
#include "targets/kernel_call.h"
#include "targets/target.h"

namespace dbgstub::guest {

class LinuxGuest : public GuestProcesses {
 public:
  // qga_path may be "": no agent (symbols from memory only).
  LinuxGuest(asio::io_context& io, std::string qga_path, ReadMemory read);

  // While the VM runs: the symbols the task walk needs, from the guest's
  // /proc/kallsyms (through the agent). Runs the event loop until done.
  Status fetch_symbols(std::chrono::milliseconds timeout);
  bool ready() const { return syms_.has_value(); }
  // While the VM is halted: the kernel's base and kallsyms, found in its
  // memory from a kernel-mode vCPU (cached per boot, see kernel_finder).
  // Gives the whole symbol table (ln, x) and, unless the agent already
  // did, the symbols the task walk needs.
  Status find_symbols_in_memory(Target& vm);
  // While the VM is halted: reads the kernel's BTF (a few MiB through the
  // gdbstub, a second or more) for task_struct's layout. dbgstub does it
  // when it first connects, so no debugger's request waits for it, nor (in
  // a lab) do the other VMs' debuggers, which share the event loop.
  Status load_layout();

  // GuestProcesses
  Result<std::vector<GuestProcess>> list() override;
  Result<GuestProcess> at(uint64_t address) override;
  Result<GuestProcess> current(unsigned cpu) override;
  void terminate(const GuestProcess& p, std::function<void(Status)> done,
                 std::function<void(const std::string&)> notice) override;
  bool terminates_while_halted() const override { return qga_.path().empty() && caller_ != nullptr; }
  // Without an agent: processes are ended by the guest kernel itself,
  // called through the VM (send_sig(SIGKILL, task, 1) from a vCPU borrowed
  // at schedule's entry; targets/vm/vm_kernel_call.h).
  void set_kernel_caller(KernelCaller* caller) { caller_ = caller; }
  // ln and x on the kernel's symbols, once found in memory.
  std::vector<TargetCommand> commands() override;

 private:
  static GuestProcess from_task(const GuestTask& t);
  Status kill_by_kernel_call(const GuestProcess& p);
  // Still p: on the task list at its address, with its pid, name and (if
  // known) start time; ESRCH otherwise.
  Status still_there(const GuestProcess& p);

  QgaClient qga_;
  ReadMemory read_;
  std::optional<GuestSymbols> syms_;
  std::optional<TaskLayout> layout_;
  std::shared_ptr<lk::SymbolTable> table_;
  KernelCaller* caller_ = nullptr;  // from memory; null until found
  std::string symbols_error_ = "the guest's symbols were not fetched";
};

}  // namespace dbgstub::guest
