// Processes of a halted Linux guest, read from its memory the way a kernel
// debugger sees them: the task list from init_task, each CPU's current
// task from its per-CPU area. Field offsets come from the guest kernel's own
// BTF, symbol addresses from its kallsyms, so nothing here is tied to one
// kernel build. Memory is read through a function the VM target provides.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dbgstub::guest {

using ReadMemory = std::function<Result<std::string>(uint64_t addr, std::size_t len)>;

// Byte offsets in struct task_struct (and how to find "current").
struct TaskLayout {
  uint32_t tasks = 0;   // struct list_head tasks
  uint32_t pid = 0;     // pid_t
  uint32_t tgid = 0;    // pid_t
  uint32_t comm = 0;    // char comm[16]
  uint32_t mm = 0;      // struct mm_struct *
  uint32_t flags = 0;   // unsigned int (PF_*)
  // u64 start_boottime (ns since boot, what /proc/PID/stat's starttime
  // shows, from 5.5), or else start_time: tells a process from a later
  // one that got its pid.
  std::optional<uint32_t> start;
  // Newer kernels keep "current" in struct pcpu_hot; older ones in the
  // per-CPU variable current_task. Offset of current_task in pcpu_hot:
  std::optional<uint32_t> pcpu_hot_current;
};

// The offsets from raw BTF data (/sys/kernel/btf/vmlinux, or the kernel's
// .BTF section read from its memory).
Result<TaskLayout> task_layout_from_btf(std::string_view raw_btf);

// Addresses from the guest's kallsyms.
struct GuestSymbols {
  uint64_t init_task = 0;
  uint64_t per_cpu_offset = 0;          // __per_cpu_offset[] (array of u64)
  std::optional<uint64_t> current_task;  // per-CPU offset of current_task
  std::optional<uint64_t> pcpu_hot;      // per-CPU offset of pcpu_hot
  uint64_t start_btf = 0, stop_btf = 0;  // __start_BTF, __stop_BTF
};

// From kallsyms lines ("ADDR TYPE NAME"): the ones listed in GuestSymbols.
Result<GuestSymbols> guest_symbols_from_kallsyms(std::string_view text);
// The kallsyms names GuestSymbols needs (to grep for them in the guest).
const std::vector<std::string>& guest_symbol_names();

struct GuestTask {
  uint64_t address = 0;   // the task_struct
  int pid = 0;            // the kernel's pid: a thread id
  int tgid = 0;           // the process id users see
  std::string comm;
  bool kernel_thread = false;  // PF_KTHREAD: no user space to end
  bool idle = false;           // pid 0: a CPU's idle task
  bool exiting = false;        // PF_EXITING: exiting, or exited and not yet reaped
  std::optional<uint64_t> start_ns;  // since boot (TaskLayout::start)
};

constexpr uint32_t kPfKthread = 0x00200000;
constexpr uint32_t kPfExiting = 0x00000004;

Result<GuestTask> read_task(const ReadMemory& read, uint64_t address, const TaskLayout& layout);
// Every thread-group leader on the task list, init_task (pid 0) first.
// Stops with an error on a broken list or past `limit` entries.
Result<std::vector<GuestTask>> walk_tasks(const ReadMemory& read, const GuestSymbols& syms, const TaskLayout& layout,
                                          std::size_t limit = 65536);
// The task CPU `cpu` is running (its "current").
Result<uint64_t> current_task_of_cpu(const ReadMemory& read, const GuestSymbols& syms, const TaskLayout& layout,
                                     unsigned cpu);

}  // namespace dbgstub::guest
