// All-stop: one thread's event stops every other thread before it is
// reported (report, stop_all_others, maybe_finish_stop); resuming, with
// the events held for later resumes; interrupting.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "targets/process/procfs.h"
#include "targets/process/process_target_impl.h"

namespace dbgstub {

using process_impl::peek_pc;
using process_impl::poke_pc;
using procfs::task_state;

// ---------------------------------------------------------------------------
// All-stop

bool ProcessTarget::runs_free(const Thread& t) const {
  auto it = procs_.find(t.pid);
  return it != procs_.end() && it->second.hidden;
}

void ProcessTarget::report(Thread& t, StopEvent ev) {
  if (runs_free(t)) {
    t.stop_wanted = false;
    resume_thread(t, false, ev.signal == SIGTRAP ? 0 : ev.signal);
    return;
  }
  if (phase_ == Phase::Running) {
    phase_ = Phase::Stopping;
    reporting_ = ev;
    stop_all_others();
  } else if (phase_ == Phase::Stopping && !reporting_ && !release_pending_) {
    reporting_ = ev;
  } else {
    // Another thread's event won; keep this one for a later resume.
    t.pending = ev;
  }
  t.stop_wanted = false;
  maybe_finish_stop();
}

void ProcessTarget::stop_all_others() {
  for (auto& [tid, t] : threads_) {
    if (t.stopped || t.fresh || t.stop_wanted || runs_free(t) || leader_zombie(t)) continue;
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) t.stop_wanted = true;
  }
}

void ProcessTarget::maybe_finish_stop() {
  if (phase_ != Phase::Stopping) return;
  bool leader_busy = false;
  for (auto& [tid, t] : threads_) {
    if (t.stopped || runs_free(t)) continue;
    if (tid != t.pid) return;
    if (!leader_zombie(t)) leader_busy = true;
  }
  if (leader_busy) {
    // A leader that exits while its other threads live on becomes a zombie
    // and never stops (gdb's check_zombie_leaders): nothing tells us when,
    // so look again shortly.
    if (!finish_retry_) {
      finish_retry_ = true;
      retry_timer_.expires_after(std::chrono::milliseconds(20));
      retry_timer_.async_wait([this](const asio::error_code& ec) {
        if (ec) return;  // cancelled: the target is going away
        finish_retry_ = false;
        maybe_finish_stop();
      });
    }
    return;
  }
  for (auto& [pid, p] : procs_)
    if (p.launching) return;
  // Attaching, every thread seized has stopped now; a clone() that one of
  // them was already inside when we seized it made a thread the kernel
  // didn't trace, which /proc lists only once that clone returned. Seize
  // such threads too (and wait for their stops), or one of them runs into
  // a breakpoint later and the program dies of SIGTRAP
  // (gdb.threads/attach-many-short-lived-threads).
  for (auto& [pid, p] : procs_) {
    if (!p.attaching) continue;
    auto found = seize_new_threads(pid);
    if (found && *found > 0) {
      spdlog::debug("attach to {}: {} more thread(s) found after the stop", pid, *found);
      return;
    }
  }
  phase_ = Phase::Stopped;
  bool interrupted = interrupt_requested_;
  interrupt_requested_ = false;
  // A step-over still parking the others ends here, its thread back on its
  // breakpoint: the debugger may resume the target as soon as it hears of
  // this stop (non-stop mode does, from inside emit), and the parked
  // threads must not then be let go by the step-over as well - a thread
  // whose step was just reported would step again, unasked.
  end_step_over();
  for (auto& [pid, p] : procs_) {
    if (!p.attaching) continue;
    p.attaching = false;
    // gdbserver reports the attach stop as SIGTRAP; GDB ignores it.
    StopEvent ev;
    ev.thread = {pid, pid};
    ev.signal = SIGTRAP;
    ev.reason = StopEvent::Reason::Start;
    if (!reporting_) reporting_ = ev;
  }
  if (release_pending_) {
    release_pending_ = false;
    std::vector<pid_t> pids;
    for (auto& [pid, p] : procs_)
      if (!p.kill_requested) pids.push_back(pid);
    for (pid_t pid : pids) detach_now(procs_[pid]);
    return;
  }
  if (!reporting_) {
    if (threads_.empty()) {
      StopEvent ev;
      ev.kind = StopEvent::Kind::NoProcess;
      reporting_ = ev;
    } else {
      // Interrupted, but the stop we asked for was overtaken: say SIGINT.
      auto& t = threads_.begin()->second;
      StopEvent ev;
      ev.thread = {t.pid, t.tid};
      ev.signal = interrupted ? SIGINT : 0;
      ev.reason = StopEvent::Reason::Interrupt;
      reporting_ = ev;
    }
  }
  StopEvent ev = *reporting_;
  reporting_.reset();
  emit(ev);
}

void ProcessTarget::emit(const StopEvent& ev) {
  last_stop_ = ev;
  if (on_stop_) on_stop_(ev);
}

void ProcessTarget::resume_thread(Thread& t, bool step, int sig) {
  t.regs.reset();
  t.stop_signal = 0;
  t.stepping = step;
  if (step) t.step_unfinished = true;
  // Signals kept from a resume answered by another thread's pending event
  // go first, then this one. Only a signal-delivery-stop delivers the
  // signal given to PTRACE_CONT; from any other stop (PTRACE_INTERRUPT,
  // ptrace events) the kernel drops it, so send those with tgkill: the
  // thread then stops for them and on_status passes them on unreported.
  std::vector<int> sigs = std::move(t.queued_signals);
  t.queued_signals.clear();
  if (sig) sigs.push_back(sig);
  std::size_t first = 0;
  long data = 0;
  if (t.signal_stop && !sigs.empty()) data = sigs[first++];
  for (std::size_t i = first; i < sigs.size(); ++i) {
    if (::syscall(SYS_tgkill, t.pid, t.tid, sigs[i]) == 0) t.injected.insert(sigs[i]);
  }
  // PTRACE_SYSCALL only while gdb catches system calls: otherwise no
  // thread makes a syscall stop at all.
  auto p = procs_.find(t.pid);
  bool syscalls = p != procs_.end() && p->second.catch_syscalls && !p->second.hidden;
  auto request = step ? PTRACE_SINGLESTEP : syscalls ? PTRACE_SYSCALL : PTRACE_CONT;
  if (ptrace(request, t.tid, nullptr, reinterpret_cast<void*>(data)) == 0) {
    t.stopped = false;
    t.signal_stop = false;
  } else {
    spdlog::debug("resume of thread {} failed: {}", t.tid, std::strerror(errno));
    if (errno == ESRCH) {
      // Out of its stop already: killed meanwhile (a thread resumed just
      // before called exit_group). Its exit is on its way; counted as
      // stopped, it made a whole-process exit read as "no resumed thread
      // left" (gdb: "No unwaited-for children left").
      t.stopped = false;
      t.signal_stop = false;
    }
  }
}

// A thread-group leader that has exited while other threads run on: a
// zombie until the last one ends, when its exit status comes. It never
// stops again, so it counts as stopped and is no longer listed.
bool ProcessTarget::leader_zombie(Thread& t) {
  if (t.tid != t.pid || t.stopped) return false;
  if (t.zombie) return true;
  char state = task_state(t.pid, t.tid);
  if (state == 'Z' || state == 'X') {
    bool others = false;
    for (auto& [tid, o] : threads_)
      if (o.pid == t.pid && tid != t.tid) others = true;
    if (others) {
      spdlog::debug("leader {} is a zombie", t.tid);
      t.zombie = true;
      t.stop_wanted = false;
    }
  }
  return t.zombie;
}

// After a single-step of a range-stepping thread while nothing else is
// being reported: whether its pc is still in the range (then it steps on).
bool ProcessTarget::in_step_range(Thread& t) {
  if (t.range_start >= t.range_end || phase_ != Phase::Running || step_over_ || runs_free(t)) return false;
  uint64_t pc = peek_pc(t.tid);
  return pc >= t.range_start && pc < t.range_end;
}

bool ProcessTarget::pending_still_valid(Thread& t, const ResumeAction& a) {
  if (!t.pending) return false;
  if (t.pending->reason == StopEvent::Reason::Step && a.kind == ResumeAction::Kind::Continue) {
    // The step the debugger asked for was overtaken by another thread's
    // event; now it continues the thread: that step is no longer wanted
    // (gdbserver drops it too), and reporting it would read as a SIGTRAP.
    t.pending.reset();
    return false;
  }
  return pending_still_current(t);
}

// Whether the event held for t (seen while another was reported) still
// means something now that the debugger may have changed its settings.
bool ProcessTarget::pending_still_current(Thread& t) {
  if (t.pending->reason == StopEvent::Reason::SyscallEntry || t.pending->reason == StopEvent::Reason::SyscallReturn) {
    // gdb no longer catches that system call: the thread just goes on.
    if (!catches_syscall(procs_[t.pid], t.pending->syscall)) {
      t.pending.reset();
      return false;
    }
  }
  if (t.pending->reason == StopEvent::Reason::SwBreak) {
    // The debugger may have removed the breakpoint since: then the thread
    // just runs the original instruction (pc was already moved back).
    Process& p = procs_[t.pid];
    if (!p.breakpoints.count(peek_pc(t.tid))) {
      t.pending.reset();
      return false;
    }
  }
  return true;
}

Status ProcessTarget::resume(const std::vector<ResumeAction>& actions) {
  if (phase_ != Phase::Stopped) return make_error(16, "target is running");
  // An exit that happened while stopped is the answer to the first resume
  // that covers that process (all threads, or that pid); a resume of other
  // processes only (gdb stepping a parent over a breakpoint) goes ahead.
  resumed_ = actions;
  for (auto it = orphan_events_.begin(); it != orphan_events_.end(); ++it) {
    if (!covers(actions, it->thread.pid)) continue;
    StopEvent ev = *it;
    orphan_events_.erase(it);
    post_stop(ev);
    return ok_status();
  }
  struct Plan { Thread* t; const ResumeAction* a; };
  std::vector<Plan> plan;
  for (auto& [tid, t] : threads_) {
    const ResumeAction* chosen = nullptr;
    for (auto& a : actions) {
      if (a.thread && a.thread->tid == tid && (a.thread->pid == 0 || a.thread->pid == t.pid)) { chosen = &a; break; }
    }
    if (!chosen) {
      for (auto& a : actions) {
        if (a.thread && a.thread->tid <= 0 && a.thread->pid == t.pid) { chosen = &a; break; }  // pPID.-1
        if (!a.thread) { chosen = &a; break; }
      }
    }
    if (procs_[t.pid].kill_requested || procs_[t.pid].hidden) continue;  // dying, or running free
    if (t.zombie || unreported_child(t.pid)) continue;  // gone, or not known to the debugger yet
    if (chosen && chosen->kind != ResumeAction::Kind::Stop) plan.push_back({&t, chosen});
  }
  if (plan.empty()) {
    for (auto& [pid, p] : procs_) {
      if (p.kill_requested && p.kill_reported) {
        // Its exit is on the way and will be the stop this resume gets
        // (from the event loop, never from inside this call).
        phase_ = Phase::Running;
        reporting_.reset();
        return ok_status();
      }
    }
    return make_error(22, "no thread to resume");
  }
  for (auto& pl : plan) {
    if (pending_still_valid(*pl.t, *pl.a)) {
      StopEvent ev = *pl.t->pending;
      pl.t->pending.reset();
      // Nothing is resumed: the signals asked for wait for each thread's
      // next resume (as gdbserver's pending_signals), not lost.
      for (auto& other : plan)
        if (other.a->signal) other.t->queued_signals.push_back(other.a->signal);
      post_stop(ev);
      return ok_status();
    }
  }
  for (auto& pl : plan) {
    Process& p = procs_[pl.t->pid];
    if (pl.a->addr) poke_pc(pl.t->tid, *pl.a->addr);
    (void)p;
    pl.t->range_start = pl.a->ranged() ? pl.a->range_start : 0;
    pl.t->range_end = pl.a->ranged() ? pl.a->range_end : 0;
    resume_thread(*pl.t, pl.a->kind == ResumeAction::Kind::Step, pl.a->signal);
  }
  phase_ = Phase::Running;
  reporting_.reset();
  return ok_status();
}

// Whether a resume with these actions lets process `pid` run (or asks
// for its exit): an action for all threads, for all processes, or for it.
bool ProcessTarget::covers(const std::vector<ResumeAction>& actions, pid_t pid) {
  for (auto& a : actions)
    if (!a.thread || a.thread->pid <= 0 || a.thread->pid == pid) return true;
  return false;
}

// Non-stop: gdb asked the stopped thread to stop (vCont;t); an event it
// had of its own (its step finished, a breakpoint hit) while another
// thread's was reported is the answer, not a plain stop.
std::optional<StopEvent> ProcessTarget::take_pending_stop(ThreadRef r) {
  auto it = threads_.find(r.tid);
  if (phase_ != Phase::Stopped || it == threads_.end() || it->second.pid != r.pid || !it->second.pending) return {};
  Thread& t = it->second;
  if (!pending_still_current(t)) return {};
  StopEvent ev = *t.pending;
  t.pending.reset();
  return ev;
}

bool ProcessTarget::exit_report_owed() const {
  if (!orphan_events_.empty()) return true;
  for (auto& [pid, p] : procs_)
    if (p.kill_requested && p.kill_reported) return true;
  return false;
}

// A stop known already (a pending event, an exit that happened while
// stopped) is the answer to this resume; it is reported from the event
// loop, never from inside resume(). Until then the target counts as
// running, with no thread resumed.
void ProcessTarget::post_stop(const StopEvent& ev) {
  phase_ = Phase::Running;
  posted_stop_ = true;
  posted_ = ev;
  asio::post(io_, [this, ev] {
    posted_stop_ = false;
    posted_.reset();
    phase_ = Phase::Stopped;
    emit(ev);
  });
}

Status ProcessTarget::interrupt() {
  if (phase_ == Phase::Stopped) return ok_status();
  if (posted_stop_) return ok_status();  // that stop is on its way
  interrupt_requested_ = true;
  if (phase_ == Phase::Running) {
    phase_ = Phase::Stopping;
    reporting_.reset();
    stop_all_others();
  }
  maybe_finish_stop();
  return ok_status();
}

}  // namespace dbgstub
