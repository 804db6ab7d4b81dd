// Calling a function of a VM's guest kernel from outside, with no agent in
// the guest (kernel mode, issue #21): a vCPU is borrowed at a safe point
// for the length of one call, as drakvuf's injector and LibVMI do. The VM
// side (targets/vm/vm_kernel_call.h) does it through the gdbstub; the guest
// OS side (targets/guest/linux_guest.h) says what to call.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/result.h"

namespace dbgstub {

struct KernelCall {
  // Where a vCPU may be borrowed: the entry of a function that runs in
  // process context with interrupts on and no spinlock held, often
  // (Linux: schedule). A breakpoint there, never where the VM happens to
  // be halted (maybe inside an interrupt handler).
  uint64_t safe_point = 0;
  uint64_t function = 0;
  // Integer arguments, System V order (rdi, rsi, rdx, rcx, r8, r9).
  std::vector<uint64_t> args;
  // The return address given to the call: kernel text that normal code
  // never runs after boot (Linux: startup_64), where a breakpoint waits.
  uint64_t return_trap = 0;
  // How long to wait for a vCPU at the safe point, and then for the return.
  std::chrono::milliseconds wait = std::chrono::seconds(10);
  // Asked at the safe point, the VM halted, before anything is changed: an
  // error cancels the call (and is its outcome).
  std::function<Status()> check;
};

// Something that can make such calls (VmTarget).
class KernelCaller {
 public:
  virtual ~KernelCaller() = default;
  // The function's return value (rax). The VM is halted before and after;
  // the borrowed vCPU is back where it was, whatever the outcome.
  virtual Result<uint64_t> call_kernel(const KernelCall& call) = 0;
};

}  // namespace dbgstub
