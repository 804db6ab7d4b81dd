// Target-side breakpoint conditions: a breakpoint hit the filter (the
// server's condition evaluator) says not to report is stepped over here,
// without the debugger: stop the other threads, take the int3 out,
// single-step the thread, put the int3 back, resume everyone. Hardware
// breakpoints need none of this: the kernel sets RF, so the thread just
// continues.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include "targets/process/process_target_impl.h"

namespace dbgstub {

using process_impl::peek_pc;

// Called for a SIGTRAP about to be reported; true if it was consumed.
bool ProcessTarget::filtered_out(Thread& t, const StopEvent& ev) {
  if (!filter_ || phase_ != Phase::Running || t.stepping || runs_free(t)) return false;
  if (ev.reason != StopEvent::Reason::SwBreak && ev.reason != StopEvent::Reason::HwBreak) return false;
  // A software breakpoint's stop filled the register cache (pc already
  // back on the int3): no PEEKUSER needed.
  uint64_t addr = ev.reason == StopEvent::Reason::HwBreak ? ev.data_addr : t.regs ? t.regs->pc() : peek_pc(t.tid);
  if (ev.reason == StopEvent::Reason::SwBreak && step_over_) {
    // Another thread's step-over is under way: this one waits at the
    // breakpoint (pc is back on it) and meets it again once resumed, when
    // its condition is evaluated. Its PTRACE_INTERRUPT, if any, is spent.
    t.stop_wanted = false;
    step_over_->parked.insert(t.tid);
    return true;
  }
  if (filter_({t.pid, t.tid}, addr)) return false;
  t.stop_wanted = false;
  if (ev.reason == StopEvent::Reason::HwBreak) {
    resume_thread(t, false, 0);
    return true;
  }
  step_over_ = StepOver{t.pid, t.tid, addr, false, {}};
  return true;  // advance_step_over() (after this status) parks the others
}

// Moves a step-over on after any wait status; ends it if it can't go on.
void ProcessTarget::advance_step_over() {
  if (!step_over_ || step_over_->stepping) {
    if (step_over_ && !threads_.count(step_over_->tid)) end_step_over();  // the stepping thread is gone
    return;
  }
  auto self = threads_.find(step_over_->tid);
  if (phase_ != Phase::Running || self == threads_.end() || !self->second.stopped) {
    // Another event is being reported (or an interrupt came): everything
    // stops anyway. The thread stays on its breakpoint and meets it again.
    end_step_over();
    return;
  }
  bool all_stopped = true;
  for (auto& [tid, o] : threads_) {
    if (tid == step_over_->tid || o.stopped || runs_free(o)) continue;
    all_stopped = false;
    step_over_->parked.insert(tid);
    if (!o.stop_wanted && !o.fresh && ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) o.stop_wanted = true;
  }
  if (!all_stopped) return;
  Thread& t = self->second;
  Process& p = procs_[t.pid];
  auto bp = p.breakpoints.find(step_over_->addr);
  if (bp != p.breakpoints.end() && p.mem_fd >= 0) {
    uint8_t orig = bp->second;
    if (::pwrite(p.mem_fd, &orig, 1, static_cast<off_t>(step_over_->addr)) != 1) {
      spdlog::warn("step-over at {:#x}: cannot remove the breakpoint", step_over_->addr);
      end_step_over();
      return;
    }
  }
  step_over_->stepping = true;
  resume_thread(t, true, 0);
  if (t.stopped) {  // the step didn't start
    on_step_over_status(t, 0);
  }
}

// A wait status of the stepping thread. True if consumed: the single-step
// finished and the thread runs on. Otherwise (a signal, an event, an
// interrupt came first) the step-over ends and the status is handled as
// usual, the int3 back in place either way.
bool ProcessTarget::on_step_over_status(Thread& t, int status) {
  int event = status >> 16;
  Process& p = procs_[t.pid];
  if (event != PTRACE_EVENT_EXEC && p.mem_fd >= 0 && p.breakpoints.count(step_over_->addr)) {
    uint8_t int3 = 0xCC;
    if (::pwrite(p.mem_fd, &int3, 1, static_cast<off_t>(step_over_->addr)) != 1)
      spdlog::warn("step-over at {:#x}: cannot reinsert the breakpoint", step_over_->addr);
  }
  t.stepping = false;
  bool done = status != 0 && WIFSTOPPED(status) && event == 0 && WSTOPSIG(status) == SIGTRAP;
  end_step_over();
  if (!done) return false;
  if (phase_ == Phase::Running) {
    resume_thread(t, false, 0);
  } else {
    t.stop_wanted = false;  // stopped now, as the interrupt wanted
    maybe_finish_stop();
  }
  return true;
}

// Lets the parked threads go again (if the target still runs).
void ProcessTarget::end_step_over() {
  if (!step_over_) return;
  std::set<pid_t> parked = std::move(step_over_->parked);
  step_over_.reset();
  if (phase_ != Phase::Running) return;
  for (pid_t tid : parked) {
    auto it = threads_.find(tid);
    if (it == threads_.end() || !it->second.stopped || it->second.pending) continue;
    it->second.stop_wanted = false;
    resume_thread(it->second, it->second.stepping, 0);  // a thread gdb was stepping goes on stepping
  }
}

}  // namespace dbgstub
