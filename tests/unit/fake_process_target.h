// A user-mode Target for the dispatchers' unit tests: processes and
// threads come from `listed` (one process 7 with its thread 7 unless a
// test says otherwise), memory is unmapped, registers read as zeroes, and
// every request that changes something succeeds and does nothing beyond
// the counts kept below. A test derives from it and overrides what it
// checks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "targets/target.h"

namespace dbgstub::testing {

class FakeProcessTarget : public Target {
 public:
  std::vector<ThreadRef> listed{{7, 7}};
  std::vector<std::vector<ResumeAction>> resumes;
  bool is_running = false;
  std::optional<StopEvent> last;
  int interrupts = 0;
  // None of the optional features unless a test gives them (its optional
  // methods keep Target's defaults).
  TargetCapabilities caps;

  Mode mode() const override { return Mode::User; }
  std::string describe() const override { return "fake"; }
  TargetCapabilities capabilities() const override { return caps; }
  void set_stop_handler(StopHandler) override {}
  // One process per thread group leader listed, numbered in order; the
  // first was started by the stub, the others attached.
  std::vector<ProcessInfo> processes() const override {
    std::vector<ProcessInfo> out;
    for (auto& t : listed)
      if (t.pid == t.tid) {
        ProcessInfo p;
        p.pid = t.pid;
        p.index = static_cast<int>(out.size());
        p.origin = p.index ? ProcessInfo::Origin::Attached : ProcessInfo::Origin::Created;
        out.push_back(p);
      }
    return out;
  }
  bool has_processes() const override { return true; }
  std::vector<ThreadRef> threads() const override { return listed; }
  bool thread_alive(ThreadRef t) const override {
    for (auto& l : listed)
      if (l == t) return true;
    return false;
  }
  std::optional<StopEvent> last_stop() const override { return last; }
  bool running() const override { return is_running; }
  std::string target_xml() const override { return ""; }
  Result<std::string> read_registers(ThreadRef) override { return std::string(8, '\0'); }
  Status write_registers(ThreadRef, const std::string&) override { return ok_status(); }
  Result<std::string> read_register(ThreadRef, int) override { return std::string(8, '\0'); }
  Status write_register(ThreadRef, int, const std::string&) override { return ok_status(); }
  std::vector<int> expedited_registers() const override { return {}; }
  Result<std::string> read_memory(int, uint64_t, std::size_t) override { return make_error(14, "unmapped"); }
  Status write_memory(int, uint64_t, const std::string&) override { return ok_status(); }
  Status insert_breakpoint(int, BreakpointType, uint64_t, uint64_t) override { return ok_status(); }
  Status remove_breakpoint(int, BreakpointType, uint64_t, uint64_t) override { return ok_status(); }
  Status resume(const std::vector<ResumeAction>& actions) override {
    resumes.push_back(actions);
    is_running = true;
    return ok_status();
  }
  Status interrupt() override {
    ++interrupts;
    return ok_status();
  }
  Status kill_process(int, const KillOptions&) override { return ok_status(); }
  Status detach_process(int) override { return ok_status(); }
  void release_all() override {}
};

}  // namespace dbgstub::testing
