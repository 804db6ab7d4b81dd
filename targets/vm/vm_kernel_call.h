// A call into a VM's guest kernel through the gdbstub only (no agent in the
// guest), for kernel mode's agentless ".kill" (issue #21):
//  1. a breakpoint on the call's safe point (Linux: schedule); every vCPU
//     runs until one hits it (bounded);
//  2. on that vCPU: the breakpoint out, all its registers saved ('g'), the
//     arguments in rdi, rsi, rdx..., rip at the function, rsp 16 bytes
//     lower with the return address (a trap in kernel text that never runs
//     after boot, where a second breakpoint waits) at the new rsp: at the
//     function's entry rsp is again 8 mod 16, as after a call;
//  3. every vCPU runs until that vCPU reaches the trap with rsp 8 bytes
//     below the saved one (the function returned); rax is the result;
//  4. the trap out, the saved registers back ('G') and the 16 bytes of
//     stack as they were: the vCPU goes on into the safe point's function
//     as if nothing had happened.
// Any failure on the way undoes what was done (breakpoints, registers,
// stack). All of it is synchronous: nothing else is served meanwhile, so
// no debugger can come or go in the middle.
#pragma once
#include <chrono>
#include <optional>
#include <string>

#include "common/result.h"
#include "targets/kernel_call.h"
#include "targets/target.h"

namespace dbgstub::vm {

// What the call needs of the VM, halted between calls (VmTarget, or a
// fake in the unit tests).
class CallControl {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~CallControl() = default;
  virtual Status insert_breakpoint(uint64_t addr) = 0;  // software (Z0)
  virtual Status remove_breakpoint(uint64_t addr) = 0;
  // Resumes every vCPU and waits for the next stop: the vCPU that stopped,
  // or nullopt if none did by `deadline` (the VM still runs then).
  virtual Result<std::optional<ThreadRef>> resume_all(Clock::time_point deadline) = 0;
  // Stops the running VM (after resume_all's nullopt).
  virtual Status halt() = 0;
  virtual Result<std::string> read_registers(ThreadRef t) = 0;  // 'g'
  virtual Status write_registers(ThreadRef t, const std::string& data) = 0;
  virtual Result<uint64_t> read_register(ThreadRef t, int regno) = 0;
  virtual Status write_register(ThreadRef t, int regno, uint64_t value) = 0;
  // Memory as vCPU t sees it.
  virtual Result<std::string> read_memory(ThreadRef t, uint64_t addr, std::size_t len) = 0;
  virtual Status write_memory(ThreadRef t, uint64_t addr, const std::string& data) = 0;
};

// gdb's numbers of the registers involved (QEMU x86-64: rax 0, rcx 2,
// rdx 3, rsi 4, rdi 5, rsp 7, r8 8, r9 9, rip 16).
struct CallRegisters {
  int rax = 0, rcx = 2, rdx = 3, rsi = 4, rdi = 5, rsp = 7, r8 = 8, r9 = 9, rip = 16;
};

Result<uint64_t> call_kernel_function(CallControl& vm, const KernelCall& call, const CallRegisters& regs = {});

}  // namespace dbgstub::vm
