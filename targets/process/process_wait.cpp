// Wait statuses: every status a traced thread reports (ChildEvents) is
// sorted here into ptrace events, syscall stops, signal stops and exits,
// and turned into the stop events the debugger hears of (see report()).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>

#include "targets/process/process_documents.h"
#include "targets/process/procfs.h"
#include "targets/process/process_target_impl.h"

namespace dbgstub {

using process_impl::poke_pc;
using procfs::task_state;
using procfs::thread_dying;

namespace {

// TRACESYSGOOD: syscall stops (only ever asked for with PTRACE_SYSCALL,
// while gdb catches system calls) come as SIGTRAP|0x80, apart from real
// SIGTRAPs.
constexpr long kTraceOptions = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD;
constexpr int kSyscallTrap = SIGTRAP | 0x80;
constexpr long kForkOptions = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEVFORKDONE;

}  // namespace

// ---------------------------------------------------------------------------
// Wait statuses

void ProcessTarget::on_status(pid_t tid, int status) {
  auto it = threads_.find(tid);
  if (it == threads_.end()) return;
  Thread& t = it->second;
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    on_thread_exit(t, status);
    return;
  }
  if (!WIFSTOPPED(status)) return;
  t.stopped = true;
  t.zombie = false;
  t.regs.reset();
  if (step_over_ && step_over_->tid == tid && step_over_->stepping && on_step_over_status(t, status)) return;
  int sig = WSTOPSIG(status);
  int event = status >> 16;
  t.signal_stop = event == 0;
  t.interrupt_stop = event == PTRACE_EVENT_STOP;
  // Every ptrace event but PTRACE_EVENT_STOP happens inside a system call
  // (fork, clone, exec...): a syscall stop after one is that call's return.
  if (!(event == 0 && sig == kSyscallTrap)) t.in_syscall = event != 0 && event != PTRACE_EVENT_STOP;
  Process& p = procs_[t.pid];

  if (p.launching) {
    // Between fork and exec only our own gate exists; the exec event is
    // the stop "before the program's first instruction".
    if (event == PTRACE_EVENT_EXEC && --p.execs_to_go > 0) {
      resume_thread(t, false, 0);  // the wrapper started: wait for its exec of the program
      return;
    }
    if (event == PTRACE_EVENT_EXEC) {
      p.launching = false;
      open_mem(p);
      StopEvent ev;
      ev.thread = {t.pid, t.tid};
      ev.signal = SIGTRAP;
      ev.reason = StopEvent::Reason::Start;
      report(t, ev);
    } else {
      resume_thread(t, false, 0);
    }
    return;
  }
  if (event != 0) {
    // Any ptrace-stop satisfies a pending PTRACE_INTERRUPT (the kernel
    // clears the trap request on every stop): no PTRACE_EVENT_STOP follows.
    if (event != PTRACE_EVENT_STOP) t.stop_wanted = false;
    on_ptrace_event(t, event, sig);
    return;
  }
  if (sig == kSyscallTrap) {
    on_syscall_stop(t);
    return;
  }
  // Signal-delivery-stop.
  if (auto inj = t.injected.find(sig); inj != t.injected.end()) {
    // A signal the debugger asked us to deliver (resume_thread): pass it
    // on now, or at the thread's next resume if a stop-all caught it here.
    t.injected.erase(inj);
    t.stop_wanted = false;
    if (phase_ == Phase::Running || runs_free(t)) {
      resume_thread(t, t.stepping, sig);
    } else {
      t.queued_signals.insert(t.queued_signals.begin(), sig);
    }
    maybe_finish_stop();
    return;
  }
  if (sig == SIGTRAP) {
    StopEvent ev = classify_sigtrap(t);
    if (ev.reason == StopEvent::Reason::Step && in_step_range(t)) {
      // Range stepping: a step that stays in the range is no news.
      resume_thread(t, true, 0);
      return;
    }
    if (ev.reason == StopEvent::Reason::Spurious) {
      t.stop_wanted = false;
      if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
      maybe_finish_stop();
      return;
    }
    if (filtered_out(t, ev)) return;
    report(t, ev);
    return;
  }
  if (pass_signals_.count(sig) && !t.stepping && (phase_ == Phase::Running || runs_free(t))) {
    resume_thread(t, false, sig);  // deliver without telling the debugger
    return;
  }
  t.stop_signal = sig;
  StopEvent ev;
  ev.thread = {t.pid, t.tid};
  ev.signal = sig;
  report(t, ev);
}

void ProcessTarget::on_ptrace_event(Thread& t, int event, int sig) {
  Process& p = procs_[t.pid];
  switch (event) {
    case PTRACE_EVENT_CLONE: {
      unsigned long new_tid = 0;
      ptrace(PTRACE_GETEVENTMSG, t.tid, nullptr, &new_tid);
      if (new_tid && !threads_.count(static_cast<pid_t>(new_tid))) add_thread(t.pid, static_cast<pid_t>(new_tid), true);
      if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
      maybe_finish_stop();
      return;
    }
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
      on_fork(t, event);
      return;
    case PTRACE_EVENT_VFORK_DONE:
      if (child_policy_.report_vfork) {
        StopEvent ev;
        ev.thread = {t.pid, t.tid};
        ev.signal = SIGTRAP;
        ev.reason = StopEvent::Reason::VForkDone;
        report(t, ev);
        return;
      }
      if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
      maybe_finish_stop();
      return;
    case PTRACE_EVENT_EXEC: {
      // The new image has none of the old breakpoints, and every other
      // thread is gone; the leader now carries the process id.
      forget_threads(t.pid, t.tid);
      // The thread that exec'd is the leader now (see options_for).
      ptrace(PTRACE_SETOPTIONS, t.tid, nullptr, options_for(t));
      p.breakpoints.clear();
      p.removed_breakpoints.clear();
      p.debug_regs = x86::DebugRegisterState{};
      p.thread_db.reset();
      open_mem(p);
      StopEvent ev;
      ev.thread = {t.pid, t.tid};
      ev.signal = SIGTRAP;
      ev.reason = StopEvent::Reason::Exec;
      auto exe = procdocs::exec_file(t.pid);
      ev.exec_path = exe ? *exe : "";
      if (!child_policy_.report_exec) {
        // A debugger that doesn't know exec events sees a plain SIGTRAP,
        // as with gdbserver.
        ev.reason = StopEvent::Reason::None;
      }
      report(t, ev);
      return;
    }
    case PTRACE_EVENT_EXIT: {
      // The leader on its way out (options_for): note its exit code, and
      // let it go on exiting as it would untraced; nothing to report.
      unsigned long exit_status = 0;
      if (t.tid == t.pid && ptrace(PTRACE_GETEVENTMSG, t.tid, nullptr, &exit_status) == 0)
        p.leader_exit_status = static_cast<int>(exit_status);
      resume_thread(t, false, 0);
      maybe_finish_stop();
      return;
    }
    case PTRACE_EVENT_STOP: {
      if (t.fresh) {
        // First stop of a new thread: give it the process's debug registers,
        // and its own trace options (see options_for).
        t.fresh = false;
        p.debug_regs.apply(t.tid);
        ptrace(PTRACE_SETOPTIONS, t.tid, nullptr, options_for(t));
        if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, false, 0);
        maybe_finish_stop();
        return;
      }
      if (t.stop_wanted) {
        if (int pending = signal_behind_interrupt(t.tid)) {
          // A signal was queued for this thread (an int3's or a finished
          // single-step's SIGTRAP, a tgkill) when our PTRACE_INTERRUPT
          // came: the kernel takes the interrupt's stop first. Let the
          // thread take the signal, so that it stops in that signal's
          // delivery, before running any code, and its event is seen, as
          // under gdbserver (whose SIGSTOP queues behind it). Else a
          // detach now would leave the program that signal - an int3's
          // SIGTRAP kills it - and an attach would show our stop instead
          // of the signal's (siginfo and all).
          spdlog::debug("thread {}: signal {} queued behind our interrupt", t.tid, pending);
          t.regs.reset();
          if (ptrace(PTRACE_CONT, t.tid, nullptr, nullptr) == 0) {
            t.stopped = false;
            t.signal_stop = false;
            return;  // stop_wanted stays: the signal's stop answers it
          }
        }
        t.stop_wanted = false;
        if (p.attaching) {
          // Reported once every thread is stopped (maybe_finish_stop).
        } else if (interrupt_requested_ && !reporting_) {
          StopEvent ev;
          ev.thread = {t.pid, t.tid};
          ev.signal = SIGINT;
          ev.reason = StopEvent::Reason::Interrupt;
          reporting_ = ev;
        }
        maybe_finish_stop();
        return;
      }
      // A late PTRACE_INTERRUPT (the thread reported something else first)
      // or a group-stop: neither is news for the debugger.
      (void)sig;
      if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
      maybe_finish_stop();
      return;
    }
    default:
      if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
      maybe_finish_stop();
  }
}

bool ProcessTarget::catches_syscall(const Process& p, int nr) const {
  if (!p.catch_syscalls) return false;
  const auto& list = *p.catch_syscalls;
  return list.empty() || std::find(list.begin(), list.end(), nr) != list.end();
}

// A syscall-entry or -exit stop (the thread was resumed with PTRACE_SYSCALL
// because its process catches system calls). Reported if gdb catches this
// one, else the thread goes on, as gdbserver's "Ignored syscall".
void ProcessTarget::on_syscall_stop(Thread& t) {
  bool entry = !t.in_syscall;
  t.in_syscall = entry;
  // Any ptrace-stop satisfies a pending PTRACE_INTERRUPT.
  t.stop_wanted = false;
  errno = 0;
  long nr = ptrace(PTRACE_PEEKUSER, t.tid, offsetof(struct user_regs_struct, orig_rax), nullptr);
  if (errno) nr = -1;
  Process& p = procs_[t.pid];
  if (runs_free(t) || !catches_syscall(p, static_cast<int>(nr))) {
    if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
    maybe_finish_stop();
    return;
  }
  StopEvent ev;
  ev.thread = {t.pid, t.tid};
  ev.signal = SIGTRAP;
  ev.reason = entry ? StopEvent::Reason::SyscallEntry : StopEvent::Reason::SyscallReturn;
  ev.syscall = static_cast<int>(nr);
  report(t, ev);
}

Status ProcessTarget::set_catch_syscalls(int pid, std::optional<std::vector<int>> syscalls) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process " + std::to_string(pid));
  // Threads take it at their next resume (PTRACE_SYSCALL or PTRACE_CONT).
  p->catch_syscalls = std::move(syscalls);
  return ok_status();
}

// A signal queued for thread `tid` alone (its own pending set, not the
// process's) that it doesn't block and that it would take before a SIGSTOP
// of its own (the kernel dequeues synchronous signals first, then the lowest
// number): the signal that gdbserver, stopping threads with SIGSTOP, would
// see first. Resumed, the thread stops in its delivery at once. 0 if none.
int ProcessTarget::signal_behind_interrupt(pid_t tid) const {
  siginfo_t queued[8];
  __ptrace_peeksiginfo_args args{};
  args.off = 0;
  args.flags = 0;  // the thread's own queue
  args.nr = 8;
  long n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, queued);
  if (n <= 0) return 0;
  uint64_t blocked = 0;
  if (ptrace(PTRACE_GETSIGMASK, tid, sizeof blocked, &blocked) != 0) return 0;
  for (long i = 0; i < n; ++i) {
    int sig = queued[i].si_signo;
    if (sig <= 0 || sig == SIGKILL || (sig > SIGSTOP && sig != SIGSYS)) continue;
    if (blocked & (uint64_t{1} << (sig - 1))) continue;
    return sig;
  }
  return 0;
}

long ProcessTarget::trace_options() const {
  return kTraceOptions | (child_policy_.follow ? kForkOptions : 0);
}

// Only a thread-group leader stops as it exits (PTRACE_O_TRACEEXIT): its
// exit code is the process's, but once the leader has exited before its
// other threads (each by SYS_exit), the kernel's final wait status of the
// process may carry another thread's code instead (gdb.threads/
// process-exit-status-is-leader-exit-status gets 02 or 041 for 01, also
// through gdbserver). The stop lets us read the leader's own code. Other
// threads would pay a stop per exit for nothing, so new threads, which
// inherit their creator's options, get theirs set at their first stop.
long ProcessTarget::options_for(pid_t pid, pid_t tid, bool launched) const {
  return trace_options() | (launched ? PTRACE_O_EXITKILL : 0) | (tid == pid ? PTRACE_O_TRACEEXIT : 0);
}

long ProcessTarget::options_for(const Thread& t) const {
  auto p = procs_.find(t.pid);
  return options_for(t.pid, t.tid, p != procs_.end() && !p->second.attached);
}

void ProcessTarget::set_child_policy(const ChildPolicy& policy) {
  bool changed = policy.follow != child_policy_.follow;
  child_policy_ = policy;
  if (!changed) return;
  // Options are per tracee; stopped ones take the new set now, new threads
  // and children inherit it.
  for (auto& [tid, t] : threads_)
    if (t.stopped) ptrace(PTRACE_SETOPTIONS, tid, nullptr, options_for(t));
}

void ProcessTarget::on_fork(Thread& t, int event) {
  unsigned long child_pid = 0;
  ptrace(PTRACE_GETEVENTMSG, t.tid, nullptr, &child_pid);
  Process& parent = procs_[t.pid];
  pid_t child = static_cast<pid_t>(child_pid);
  if (child > 0 && !procs_.count(child)) {
    Process c;
    c.pid = child;
    c.parent = t.pid;
    c.attached = parent.attached;
    c.origin = ProcessInfo::Origin::Child;
    c.index = next_index_++;
    // The child's memory is a copy of the parent's, int3s included; so is
    // the wish for hardware watchpoints.
    c.breakpoints = parent.breakpoints;
    c.debug_regs = parent.debug_regs;
    procs_[child] = std::move(c);
    open_mem(procs_[child]);
    add_thread(child, child, true);
    spdlog::info("following {} child {} of {}", event == PTRACE_EVENT_VFORK ? "vfork" : "fork", child, t.pid);
  }
  bool vfork = event == PTRACE_EVENT_VFORK;
  bool reported = vfork ? child_policy_.report_vfork : child_policy_.report_fork;
  auto ci = procs_.find(child);
  if (runs_free(t)) reported = false;  // a hidden process's children are hidden too
  if (!reported && ci != procs_.end() && ci->second.origin == ProcessInfo::Origin::Child && !ci->second.hidden) {
    Process& c = ci->second;
    c.hidden = true;
    // Nobody will step it over the int3s it inherited: take them out of
    // its copy of memory (a vfork child shares the parent's: leave those).
    if (!vfork && c.mem_fd >= 0)
      for (auto& [addr, orig] : c.breakpoints) (void)!::pwrite(c.mem_fd, &orig, 1, static_cast<off_t>(addr));
    c.breakpoints.clear();
    c.debug_regs = x86::DebugRegisterState{};
  }
  if (reported) {
    StopEvent ev;
    ev.thread = {t.pid, t.tid};
    ev.signal = SIGTRAP;
    ev.reason = vfork ? StopEvent::Reason::VFork : StopEvent::Reason::Fork;
    ev.child = {child, child};
    report(t, ev);
    return;
  }
  // Followed for .childdbg only: the debugger isn't told; both run on.
  if (phase_ == Phase::Running || runs_free(t)) resume_thread(t, t.stepping, 0);
  maybe_finish_stop();
}

StopEvent ProcessTarget::classify_sigtrap(Thread& t) {
  Process& p = procs_[t.pid];
  StopEvent ev;
  ev.thread = {t.pid, t.tid};
  ev.signal = SIGTRAP;
  siginfo_t si{};
  ptrace(PTRACE_GETSIGINFO, t.tid, nullptr, &si);
  if (!p.debug_regs.empty() || si.si_code == TRAP_HWBKPT) {
    int slot = x86::DebugRegisterState::hit_slot(t.tid);
    if (slot >= 0) {
      const x86::DebugSlot& s = p.debug_regs.slot(slot);
      switch (s.type) {
        case 1: ev.reason = StopEvent::Reason::HwBreak; break;
        case 2: ev.reason = StopEvent::Reason::Watch; break;
        case 3: ev.reason = StopEvent::Reason::ReadWatch; break;
        default: ev.reason = StopEvent::Reason::AccessWatch; break;
      }
      ev.data_addr = s.addr;
      return ev;
    }
  }
  if (si.si_code == SI_KERNEL) {
    // The general registers now (the stop reply wants them anyway), not
    // just the pc: one PTRACE_GETREGS instead of a PEEKUSER and a GETREGS.
    uint64_t pc = 0;
    if (auto regs = x86::ThreadRegisters::fetch(t.tid, false)) {
      t.regs = std::move(*regs);
      pc = t.regs->pc();
    }
    if (pc && p.breakpoints.count(pc - 1)) {
      // int3 leaves pc after the breakpoint; GDB wants it at the breakpoint.
      poke_pc(t.tid, pc - 1);
      t.regs->assume_pc(pc - 1);
      ev.reason = StopEvent::Reason::SwBreak;
      return ev;
    }
    uint8_t now = 0;
    if (pc && p.removed_breakpoints.count(pc - 1) && p.mem_fd >= 0 &&
        ::pread(p.mem_fd, &now, 1, static_cast<off_t>(pc - 1)) == 1 && now != 0xCC) {
      // This thread hit a breakpoint while another one's stop was being
      // reported, and the kernel delivered that SIGTRAP only now, after
      // the debugger removed the breakpoint: as if it never ran the int3.
      poke_pc(t.tid, pc - 1);
      t.regs->assume_pc(pc - 1);
      ev.reason = StopEvent::Reason::Spurious;
      return ev;
    }
  }
  if (t.stepping) {
    ev.reason = StopEvent::Reason::Step;
    t.step_unfinished = false;
  } else if (t.step_unfinished && si.si_code == TRAP_TRACE) {
    // The trap of a step that a stop-all overtook (the PTRACE_INTERRUPT
    // stop comes before a queued SIGTRAP), delivered after the debugger
    // continued the thread instead: that step is no longer wanted.
    t.step_unfinished = false;
    ev.reason = StopEvent::Reason::Spurious;
  }
  return ev;
}

void ProcessTarget::on_thread_exit(Thread& t, int status) {
  pid_t pid = t.pid;
  bool leader = t.tid == pid;
  remove_thread(t.tid);
  if (leader) {
    on_process_exit(pid, status);
  } else {
    maybe_no_resumed();
    maybe_finish_stop();
  }
}

// Some threads were left stopped (gdb's scheduler-locking) and the last
// one resumed is gone: no event can come any more. Stop with "no resumed
// threads" (gdb: "No unwaited-for children left"), as gdbserver; but only
// if that still holds a moment later (`confirmed`).
void ProcessTarget::maybe_no_resumed(bool confirmed) {
  if (phase_ != Phase::Running || posted_stop_ || threads_.empty()) return;
  // Threads parked for a step-over run on after it.
  if (step_over_) return;
  for (auto& [tid, t] : threads_)
    if (!t.stopped && !t.zombie && !runs_free(t)) return;
  for (auto& [pid, p] : procs_)
    if (p.launching || p.kill_requested) return;  // an exit or exec is on its way
  // A thread we hold stopped is dying: the last resumed one called
  // exit_group, which kills the stopped ones too, and the process's exit
  // is the news (gdb.threads/non-ldr-exit: exit in a non-leader thread
  // under scheduler-locking). A leader that ended by itself earlier was
  // running then, not stopped: no-unwaited-for-left still gets its "N".
  for (auto& [tid, t] : threads_)
    if (t.stopped && !runs_free(t) && thread_dying(t.pid, tid)) return;
  for (auto& [tid, t] : threads_) {
    if (!t.zombie) continue;
    bool others = false;
    for (auto& [otid, o] : threads_) others = others || (o.pid == t.pid && otid != tid);
    if (!others) return;  // a zombie leader alone: its process's exit is on its way
  }
  if (!confirmed) {
    // A group exit reaches the stopped threads a little after the caller's
    // own exit is seen: one may have taken its SIGKILL already and sit in
    // the leader's exit stop (options_for), whose status is not read yet.
    // Look again once the statuses of the moment are in.
    if (!no_resumed_check_) {
      no_resumed_check_ = true;
      no_resumed_timer_.expires_after(std::chrono::milliseconds(30));
      no_resumed_timer_.async_wait([this](const asio::error_code& ec) {
        if (ec) return;  // cancelled: the target is going away
        no_resumed_check_ = false;
        maybe_no_resumed(true);
        maybe_finish_stop();
      });
    }
    return;
  }
  spdlog::info("no resumed thread left");
  phase_ = Phase::Stopping;
  StopEvent ev;
  ev.kind = StopEvent::Kind::NoProcess;
  reporting_ = ev;
}

// A running leader that exited while its other threads live on sends its
// tracer SIGCHLD but can't be waited for until they end: look for such
// zombies after every SIGCHLD (gdbserver's check_zombie_leaders). One was
// maybe the last thread resumed (gdb's scheduler-locking): then no event
// can come any more.
void ProcessTarget::check_zombie_leaders() {
  if (phase_ != Phase::Running) return;
  bool found = false;
  for (auto& [tid, t] : threads_) {
    if (tid != t.pid || t.stopped || t.zombie || runs_free(t)) continue;
    char state = task_state(t.pid, tid);
    if (state != 'Z' && state != 'X') continue;
    // The whole process ending (exit_group) makes a zombie leader too, for
    // the moment until the other threads' exits are reaped: not this case.
    if (group_exiting(t.pid)) continue;
    if (leader_zombie(t)) {
      spdlog::info("thread {} (the leader) exited, its other threads live on", tid);
      found = true;
    }
  }
  if (!found) return;
  maybe_no_resumed();
  maybe_finish_stop();
}

// A thread of `pid` other than the leader is dying or dead (a group exit
// kills them all with SIGKILL; their exits are on the way).
bool ProcessTarget::group_exiting(pid_t pid) const {
  for (auto& [tid, t] : threads_)
    if (t.pid == pid && tid != pid && thread_dying(pid, tid)) return true;
  return false;
}

void ProcessTarget::on_process_exit(pid_t pid, int status) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return;
  Process& p = it->second;
  bool silent = (p.kill_requested && !p.kill_reported) || p.hidden;
  bool reported_kill = p.kill_requested && p.kill_reported;
  std::optional<int> leader_status = p.leader_exit_status;
  if (reported_kill) spdlog::info("process {} ended by .kill", pid);
  forget_threads(pid);
  close_mem(p);
  procs_.erase(it);
  take_back_terminal(pid);
  if (silent) {
    spdlog::info("process {} killed", pid);
    maybe_finish_stop();
    return;
  }
  if (WIFEXITED(status) && leader_status && WIFEXITED(*leader_status) && *leader_status != status) {
    // The kernel's status names another thread's code (see options_for).
    // Left alone: a group exit after the leader's own (exit_group in
    // another thread) also ends here, and would be reported with the
    // leader's code.
    spdlog::debug("process {}: wait status {:#x}, the leader exited with {:#x}", pid, status, *leader_status);
    status = *leader_status;
  }
  StopEvent ev;
  ev.thread = {pid, pid};
  if (WIFEXITED(status)) {
    ev.kind = StopEvent::Kind::Exited;
    ev.exit_code = WEXITSTATUS(status);
  } else {
    ev.kind = StopEvent::Kind::Terminated;
    ev.signal = WTERMSIG(status);
  }
  spdlog::info("process {} {} {}", pid, ev.kind == StopEvent::Kind::Exited ? "exited with" : "killed by signal",
               ev.kind == StopEvent::Kind::Exited ? ev.exit_code : ev.signal);
  if (phase_ == Phase::Stopped) {
    // Told at the next resume or stop query ("monitor .kill").
    orphan_events_.push_back(ev);
    if (reported_kill) last_stop_ = ev;
    return;
  }
  if (!covers(resumed_, pid)) {
    // Not an answer to this resume: gdb stepping a parent over a breakpoint
    // while a child it had .kill-ed dies must get the parent's step (it
    // would keep waiting for it); the exit waits for a resume of its own.
    orphan_events_.push_back(ev);
    maybe_finish_stop();
    return;
  }
  if (phase_ == Phase::Running) {
    phase_ = Phase::Stopping;
    reporting_ = ev;
    stop_all_others();
  } else if (!reporting_ || reporting_->kind == StopEvent::Kind::Signal) {
    // An exit outranks a signal stop chosen earlier in the same stop-all;
    // that signal is kept for later unless its thread died too.
    if (reporting_) {
      auto th = threads_.find(reporting_->thread.tid);
      if (th != threads_.end()) th->second.pending = reporting_;
    }
    reporting_ = ev;
  } else {
    orphan_events_.push_back(ev);
  }
  maybe_finish_stop();
}

}  // namespace dbgstub
