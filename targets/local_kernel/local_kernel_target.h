// Local-kernel target: the running kernel of the machine dbgstub runs on,
// read-only. Symbols from /proc/kallsyms, memory from /proc/kcore (where it
// exists), processes from /proc. Nothing here can stop, resume or change
// the machine: the server's mode policy refuses those requests, and this
// target refuses them again as a second line of defence.
#pragma once
#include <memory>

#include "targets/target.h"

namespace dbgstub {

class LocalKernelTarget : public Target {
 public:
  // Paths are parameters so tests can point them at fixtures.
  struct Paths {
    std::string kallsyms = "/proc/kallsyms";
    std::string kcore = "/proc/kcore";
    std::string proc = "/proc";
    std::string btf = "/sys/kernel/btf/vmlinux";
  };
  LocalKernelTarget();
  explicit LocalKernelTarget(Paths paths);
  ~LocalKernelTarget() override;

  Mode mode() const override { return Mode::LocalKernel; }
  std::string describe() const override;
  // Only the OS data ("info os"): no process of its own to describe.
  TargetCapabilities capabilities() const override { return {.osdata = true}; }
  void set_stop_handler(StopHandler h) override;

  std::vector<ProcessInfo> processes() const override;   // none: nothing is debugged
  std::vector<ThreadRef> threads() const override;       // one pseudo-thread {1,1}
  bool thread_alive(ThreadRef t) const override;
  std::optional<StopEvent> last_stop() const override;
  bool running() const override { return false; }

  std::string target_xml() const override;
  Result<std::string> read_registers(ThreadRef t) override;   // zeros: no context to show
  Status write_registers(ThreadRef t, const std::string& data) override;
  Result<std::string> read_register(ThreadRef t, int regno) override;
  Status write_register(ThreadRef t, int regno, const std::string& value) override;
  std::vector<int> expedited_registers() const override { return {}; }

  Result<std::string> read_memory(int pid, uint64_t addr, std::size_t len) override;
  Status write_memory(int pid, uint64_t addr, const std::string& data) override;
  Status insert_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) override;
  Status remove_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) override;
  Status resume(const std::vector<ResumeAction>& actions) override;
  Status interrupt() override;
  Status kill_process(int pid, const KillOptions& how = {}) override;
  Status detach_process(int pid) override;
  void release_all() override {}

  std::vector<TargetCommand> commands() override;   // ln, x, !process
  Result<std::string> osdata(const std::string& annex) override;
  // _text from kallsyms (nullopt where addresses are hidden).
  std::optional<uint64_t> kernel_base() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbgstub
