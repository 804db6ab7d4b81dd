#include "targets/process/process_target.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <chrono>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "common/program_search.h"
#include "targets/local_kernel/local_kernel_internal.h"
#include "targets/process/process_documents.h"

namespace dbgstub {
namespace {

// TRACESYSGOOD: syscall stops (only ever asked for with PTRACE_SYSCALL,
// while gdb catches system calls) come as SIGTRAP|0x80, apart from real
// SIGTRAPs.
constexpr long kTraceOptions = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD;
constexpr int kSyscallTrap = SIGTRAP | 0x80;
constexpr long kForkOptions = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEVFORKDONE;

Error errno_error(const std::string& what) {
  int e = errno;
  return make_error(e ? e : 1, what + ": " + std::strerror(e));
}

uint64_t peek_pc(pid_t tid) {
  errno = 0;
  long v = ptrace(PTRACE_PEEKUSER, tid, offsetof(struct user_regs_struct, rip), nullptr);
  return errno ? 0 : static_cast<uint64_t>(v);
}

void poke_pc(pid_t tid, uint64_t pc) {
  ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rip), pc);
}

// The state letter of /proc/PID/task/TID/stat ('R', 'S', 'Z', ...), 0 if gone.
char task_state(pid_t pid, pid_t tid) {
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char buf[512];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  return close && close[1] == ' ' ? close[2] : 0;
}

// Calls fn(key, value) for each "Key:\tvalue" line of a /proc status file
// (value starts after the colon); false if the file can't be opened.
template <class Fn>
bool each_status_field(const std::string& path, Fn fn) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  char line[256];
  while (std::fgets(line, sizeof line, f))
    if (const char* colon = std::strchr(line, ':')) fn(std::string_view(line, colon - line), colon + 1);
  std::fclose(f);
  return true;
}

// Thread `tid` of `pid` is dying or dead: ended, or SIGKILL pending (a
// group exit kills every thread with it, stopped ones too).
bool thread_dying(pid_t pid, pid_t tid) {
  bool dying = false;
  auto field = [&](std::string_view key, const char* value) {
    if (key == "State") {
      while (*value == ' ' || *value == '\t') ++value;
      if (*value == 'Z' || *value == 'X') dying = true;
    }
    if (key == "SigPnd" || key == "ShdPnd") {
      uint64_t pending = std::strtoull(value, nullptr, 16);
      if (pending & (uint64_t{1} << (SIGKILL - 1))) dying = true;
    }
  };
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status";
  return !each_status_field(path, field) || dying;
}

// The process (thread group) `tid` belongs to, from /proc/TID/status; 0 if
// it can't be read. /proc/TID exists for every thread, listed or not.
pid_t thread_group_of(pid_t tid) {
  pid_t tgid = 0;
  each_status_field("/proc/" + std::to_string(tid) + "/status", [&](std::string_view key, const char* value) {
    if (key == "Tgid") tgid = static_cast<pid_t>(std::atoi(value));
  });
  return tgid;
}

}  // namespace

ProcessTarget::ProcessTarget(asio::io_context& io, ChildEvents& events)
    : io_(io), events_(events), retry_timer_(io), no_resumed_timer_(io) {
  events_.on_sigchld([this] { check_zombie_leaders(); });
}

ProcessTarget::~ProcessTarget() {
  events_.on_sigchld(nullptr);
  take_back_terminal(tty_owner_);
  for (auto& [tid, t] : threads_) events_.unwatch(tid);
  for (auto& [pid, p] : procs_) close_mem(p);
}

std::string ProcessTarget::describe() const {
  std::string s = "Linux process";
  for (auto& [pid, p] : procs_) {
    auto exe = procdocs::exec_file(pid);
    s += " " + std::to_string(pid) + (exe ? " (" + *exe + ")" : "");
  }
  return s;
}

// ---------------------------------------------------------------------------
// Starting

Status ProcessTarget::launch(const LaunchSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) return make_error(22, "no program to run");
  if (::access(spec.argv[0].c_str(), X_OK) != 0) return errno_error("cannot run " + spec.argv[0]);
  std::vector<std::string> full = spec.wrapper;
  if (!full.empty() && full[0].find('/') == std::string::npos) {
    // Like execvp: find the wrapper on PATH (before fork, not in the child).
    if (auto found = find_on_path(full[0], search_path_list(), ".")) full[0] = *found;
  }
  full.insert(full.end(), spec.argv.begin(), spec.argv.end());
  // The child waits on `gate` until we have seized it, so that the exec is
  // traced without any blocking wait here.
  int gate[2];
  if (::pipe2(gate, O_CLOEXEC) != 0) return errno_error("pipe");
  std::vector<char*> argv, envp;
  for (auto& a : full) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(gate[0]);
    ::close(gate[1]);
    return errno_error("fork");
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    ::close(gate[1]);
    char c;
    while (::read(gate[0], &c, 1) < 0 && errno == EINTR) {
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGTTOU, SIG_DFL);  // ignored by dbgstub once it gave its terminal away
    ::signal(SIGTTIN, SIG_DFL);
    // Own process group (as gdbserver does); give_terminal makes it the
    // foreground one when dbgstub's stdin is its terminal.
    ::setpgid(0, 0);
    if (spec.disable_aslr) ::personality(ADDR_NO_RANDOMIZE);
    if (spec.redirect_stdio) {
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
      ::dup2(2, 1);
    }
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) ::_exit(127);
    // dbgstub's own descriptors (its listening socket, the debugger's
    // connection, host I/O files) must not outlive the exec: a program
    // left running could accept the next debugger's connection.
    if (::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
      for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (spec.exec_fd >= 0 && spec.wrapper.empty()) {
      ::syscall(SYS_execveat, spec.exec_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
      // ENOENT: a "#!" script, whose interpreter can't open a close-on-exec
      // descriptor; it is run by its path instead.
      if (errno != ENOENT) ::_exit(127);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(gate[0]);
  if (ptrace(PTRACE_SEIZE, pid, nullptr, options_for(pid, pid, true)) != 0) {
    Error e = errno_error("ptrace seize");
    ::kill(pid, SIGKILL);
    ::close(gate[1]);
    events_.poll();
    return e;
  }
  Process p;
  p.pid = pid;
  p.launching = true;
  p.execs_to_go = spec.wrapper.empty() ? 1 : 2;
  p.index = next_index_++;
  p.origin = ProcessInfo::Origin::Created;
  procs_[pid] = std::move(p);
  add_thread(pid, pid, false);
  if (!spec.redirect_stdio) give_terminal(pid);
  ::close(gate[1]);  // let the child exec
  phase_ = Phase::Running;
  resumed_ = {ResumeAction{}};
  reporting_.reset();
  spdlog::info("launched {} as pid {}", spec.argv[0], pid);
  return ok_status();
}

Status ProcessTarget::attach(int pid) {
  if (pid <= 0) return make_error(22, "bad process id");
  if (procs_.count(pid)) return make_error(17, "already attached to process " + std::to_string(pid));
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  if (!std::filesystem::exists(task_dir, ec)) return make_error(3, "no such process " + std::to_string(pid));
  // A thread's id names its whole thread group in /proc/TID/task: seizing
  // that would register the process under the thread's id, which gdb
  // never sees in a stop reply. Name the process instead, as ps does.
  if (pid_t tgid = thread_group_of(pid); tgid && tgid != pid)
    return make_error(3, std::to_string(pid) + " is a thread of process " + std::to_string(tgid) +
                             ", not a process: attach to " + std::to_string(tgid));
  Process p;
  p.pid = pid;
  p.attached = true;
  p.attaching = true;
  p.index = next_index_++;
  p.origin = ProcessInfo::Origin::Attached;
  procs_[pid] = std::move(p);
  // Threads can be created while we attach: repeat until a pass finds no
  // new thread.
  while (true) {
    auto found = seize_new_threads(pid);
    if (!found) {
      procs_.erase(pid);
      return found.error();
    }
    if (*found == 0) break;
  }
  open_mem(procs_[pid]);
  phase_ = Phase::Stopping;
  resumed_ = {ResumeAction{}};
  reporting_.reset();
  spdlog::info("attached to pid {}", pid);
  return ok_status();
}

// Seizes (and interrupts) the threads of `pid` found in /proc that we
// don't trace yet; how many. An error if the leader is one and can't be.
Result<int> ProcessTarget::seize_new_threads(pid_t pid) {
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  int found = 0;
  for (auto& entry : std::filesystem::directory_iterator(task_dir, ec)) {
    pid_t tid = std::atoi(entry.path().filename().c_str());
    if (tid <= 0 || threads_.count(tid)) continue;
    if (ptrace(PTRACE_SEIZE, tid, nullptr, options_for(pid, tid, false)) != 0) {
      if (tid == pid) return errno_error("cannot attach to process " + std::to_string(pid));
      continue;  // thread exited meanwhile
    }
    add_thread(pid, tid, false);
    Thread& t = threads_[tid];
    ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
    t.stop_wanted = true;
    ++found;
  }
  return found;
}

// The program reads and writes the terminal on our stdin as gdbserver's
// does: its process group becomes the foreground one (else reading it
// stops the program with SIGTTIN), and ours again when it ends. Only if
// that terminal is ours (we are its foreground group) and not lent out.
void ProcessTarget::give_terminal(pid_t pid) {
  if (tty_owner_ || !::isatty(0)) return;
  pid_t fg = ::tcgetpgrp(0);
  if (fg < 0 || fg != ::getpgrp()) return;
  // In the background now, dbgstub itself must not be stopped by the
  // terminal (writing its log, taking the terminal back).
  ::signal(SIGTTOU, SIG_IGN);
  ::signal(SIGTTIN, SIG_IGN);
  ::setpgid(pid, pid);  // the child does it too, but maybe not yet
  if (::tcsetpgrp(0, pid) != 0) {
    spdlog::debug("tcsetpgrp: {}", std::strerror(errno));
    return;
  }
  tty_owner_ = pid;
  tty_saved_pgrp_ = fg;
}

void ProcessTarget::take_back_terminal(pid_t pid) {
  if (!tty_owner_ || pid != tty_owner_) return;
  tty_owner_ = 0;
  if (::tcsetpgrp(0, tty_saved_pgrp_) != 0) spdlog::debug("tcsetpgrp: {}", std::strerror(errno));
}

void ProcessTarget::add_thread(pid_t pid, pid_t tid, bool fresh) {
  Thread t;
  t.tid = tid;
  t.pid = pid;
  t.fresh = fresh;
  threads_[tid] = std::move(t);
  events_.watch(tid, [this](pid_t id, int status) {
    on_status(id, status);
    advance_step_over();
  });
}

// Drops every thread of `pid` except `keep` (0: none) from our books.
void ProcessTarget::forget_threads(pid_t pid, pid_t keep) {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->second.pid == pid && it->first != keep) {
      events_.unwatch(it->first);
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
}

void ProcessTarget::remove_thread(pid_t tid) {
  events_.unwatch(tid);
  threads_.erase(tid);
}

void ProcessTarget::open_mem(Process& p) {
  close_mem(p);
  std::string path = "/proc/" + std::to_string(p.pid) + "/mem";
  p.mem_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (p.mem_fd < 0) spdlog::warn("open {}: {}", path, std::strerror(errno));
}

void ProcessTarget::close_mem(Process& p) {
  if (p.mem_fd >= 0) ::close(p.mem_fd);
  p.mem_fd = -1;
}

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
  std::string path = "/proc/" + std::to_string(t.pid) + "/task/" + std::to_string(t.tid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  char buf[512];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  if (close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X')) {
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

// ---------------------------------------------------------------------------
// Ending

Status ProcessTarget::kill_process(int pid, const KillOptions& how) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process " + std::to_string(pid));
  drop_unreported_children(p->pid, true);
  p->kill_requested = true;
  p->kill_reported = how.report_exit;
  pid = p->pid;
  if (how.deliver_pending_signal && deliver_fatal_signal(*p)) {
    events_.poll();
    return ok_status();
  }
  if (::kill(pid, SIGKILL) != 0) return errno_error("kill");
  // Reap promptly so that a following request sees the process gone.
  events_.poll();
  return ok_status();
}

// Ends the process by the signal one of its threads is stopped with, if
// that signal's action is the default one and it is fatal. A handler, an
// ignored signal or no pending signal: false (the caller uses SIGKILL).
bool ProcessTarget::deliver_fatal_signal(Process& p) {
  Thread* th = nullptr;
  for (auto& [tid, t] : threads_)
    if (t.pid == p.pid && t.stopped && t.stop_signal) th = &t;
  if (!th) return false;
  int sig = th->stop_signal;
  static const std::set<int> kIgnoredByDefault = {SIGCHLD, SIGCONT, SIGURG, SIGWINCH, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU};
  if (kIgnoredByDefault.count(sig)) return false;
  uint64_t caught = 0, ignored = 0;
  each_status_field("/proc/" + std::to_string(p.pid) + "/status", [&](std::string_view key, const char* value) {
    if (key == "SigCgt") caught = std::strtoull(value, nullptr, 16);
    if (key == "SigIgn") ignored = std::strtoull(value, nullptr, 16);
  });
  uint64_t bit = 1ULL << (sig - 1);
  if ((caught | ignored) & bit) return false;
  // Resuming with the signal makes the kernel deliver it at once; its
  // default action ends the whole thread group, stopped threads included.
  return ptrace(PTRACE_CONT, th->tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) == 0;
}

// The signal a detached thread takes with it, as gdbserver: the one of a
// stop not reported yet, or of the signal stop the debugger was told of
// and has not resumed from; if the debugger lets the program have it.
int ProcessTarget::detach_signal(const Thread& t) const {
  int sig = t.stop_signal;
  if (t.pending) {
    // A breakpoint, step or event stop is no signal of the program's.
    bool plain = t.pending->kind == StopEvent::Kind::Signal && t.pending->reason == StopEvent::Reason::None;
    sig = plain ? t.pending->signal : 0;
  }
  if (sig == 0) return 0;
  if (program_signals_) return program_signals_->count(sig) ? sig : 0;
  return sig == SIGTRAP || sig == SIGINT ? 0 : sig;
}

void ProcessTarget::detach_now(Process& p) {
  for (auto& [addr, orig] : p.breakpoints) {
    if (p.mem_fd >= 0) (void)!::pwrite(p.mem_fd, &orig, 1, static_cast<off_t>(addr));
  }
  p.breakpoints.clear();
  pid_t pid = p.pid;
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->second.pid != pid) { ++it; continue; }
    x86::DebugRegisterState{}.apply(it->first);
    int sig = detach_signal(it->second);
    if (sig) spdlog::info("detach: thread {} gets signal {}", it->first, sig);
    ptrace(PTRACE_DETACH, it->first, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
    events_.unwatch(it->first);
    it = threads_.erase(it);
  }
  close_mem(p);
  procs_.erase(pid);
  spdlog::info("detached from pid {}", pid);
}

Status ProcessTarget::detach_process(int pid) {
  Process* p = find_process(pid);
  if (!p) {
    // Ended while stopped (killed from outside), the debugger not told
    // yet: nothing is left to detach from, and the exit is no news to a
    // debugger that lets the process go (gdbserver says OK too).
    for (auto it = orphan_events_.begin(); it != orphan_events_.end(); ++it) {
      if (pid > 0 && it->thread.pid != pid) continue;
      spdlog::info("detach from pid {}: it has ended already", it->thread.pid);
      orphan_events_.erase(it);
      return ok_status();
    }
    return make_error(3, "no such process " + std::to_string(pid));
  }
  if (phase_ != Phase::Stopped) return make_error(16, "process is running");
  drop_unreported_children(p->pid, false);
  detach_now(*p);
  return ok_status();
}

void ProcessTarget::release_all() {
  std::vector<pid_t> launched;
  for (auto& [pid, p] : procs_)
    if (!p.attached) launched.push_back(pid);
  for (pid_t pid : launched) kill_process(pid);
  std::vector<pid_t> attached;
  for (auto& [pid, p] : procs_)
    if (p.attached && !p.kill_requested) attached.push_back(pid);
  if (attached.empty()) return;
  if (phase_ == Phase::Stopped) {
    for (pid_t pid : attached) detach_now(procs_[pid]);
    return;
  }
  // Running: stop everything, then detach (in maybe_finish_stop).
  release_pending_ = true;
  if (phase_ == Phase::Running) {
    phase_ = Phase::Stopping;
    stop_all_others();
  }
  maybe_finish_stop();
}

// ---------------------------------------------------------------------------
// Queries

ProcessTarget::Process* ProcessTarget::find_process(int pid) {
  if (pid <= 0 && !procs_.empty()) {
    for (auto& [id, p] : procs_)
      if (!p.kill_requested) return &p;
    return nullptr;
  }
  auto it = procs_.find(pid);
  return it == procs_.end() || it->second.kill_requested ? nullptr : &it->second;
}

ProcessTarget::Thread* ProcessTarget::find_thread(ThreadRef r) {
  if (r.tid <= 0) {
    for (auto& [tid, t] : threads_)
      if ((r.pid <= 0 || t.pid == r.pid) && !procs_[t.pid].kill_requested) return &t;
    return nullptr;
  }
  auto it = threads_.find(r.tid);
  return it == threads_.end() ? nullptr : &it->second;
}

bool ProcessTarget::has_processes() const {
  for (auto& [pid, p] : procs_)
    if (!p.kill_requested) return true;
  return false;
}

std::vector<ProcessInfo> ProcessTarget::processes() const {
  std::vector<ProcessInfo> out;
  for (auto& [pid, p] : procs_) {
    if (p.kill_requested) continue;
    ProcessInfo info;
    info.pid = pid;
    info.attached = p.attached;
    info.index = p.index;
    info.origin = p.origin;
    info.parent_pid = p.parent;
    auto exe = procdocs::exec_file(pid);
    if (exe) info.executable = *exe;
    info.name = procdocs::thread_name(pid, pid);
    out.push_back(info);
  }
  return out;
}

std::vector<int> ProcessTarget::process_ids() const {
  std::vector<int> out;
  for (auto& [pid, p] : procs_)
    if (!p.kill_requested) out.push_back(pid);  // as processes()
  return out;
}

std::vector<ThreadRef> ProcessTarget::threads() const {
  std::vector<ThreadRef> out;
  for (auto& [tid, t] : threads_) {
    auto p = procs_.find(t.pid);
    if (p == procs_.end() || p->second.kill_requested || p->second.launching || p->second.hidden || t.fresh ||
        t.zombie || unreported_child(t.pid))
      continue;
    out.push_back({t.pid, tid});
  }
  // The leader first, as GDB numbers threads in list order.
  std::stable_partition(out.begin(), out.end(), [](const ThreadRef& r) { return r.pid == r.tid; });
  return out;
}

std::string ProcessTarget::thread_name(ThreadRef t) const { return procdocs::thread_name(t.pid, t.tid); }

bool ProcessTarget::thread_alive(ThreadRef r) const {
  auto it = threads_.find(r.tid);
  return it != threads_.end() && (r.pid <= 0 || it->second.pid == r.pid) && !runs_free(it->second) &&
         !it->second.zombie && !unreported_child(it->second.pid);
}

// A child whose fork/vfork event is still pending with its parent: the
// debugger doesn't know it yet, so it is not listed (gdbserver's
// thread_pending_parent), not resumed, and goes with its parent.
bool ProcessTarget::unreported_child(pid_t pid) const {
  auto is_fork = [pid](const std::optional<StopEvent>& ev) {
    return ev && (ev->reason == StopEvent::Reason::Fork || ev->reason == StopEvent::Reason::VFork) &&
           ev->child.pid == pid;
  };
  if (is_fork(reporting_) || is_fork(posted_)) return true;
  for (auto& [tid, t] : threads_)
    if (is_fork(t.pending)) return true;
  return false;
}

void ProcessTarget::drop_unreported_children(pid_t parent, bool kill) {
  std::vector<pid_t> children;
  for (auto& [tid, t] : threads_)
    if (t.pid == parent && t.pending &&
        (t.pending->reason == StopEvent::Reason::Fork || t.pending->reason == StopEvent::Reason::VFork)) {
      children.push_back(t.pending->child.pid);
      t.pending.reset();
    }
  for (pid_t c : children) {
    auto it = procs_.find(c);
    if (it == procs_.end()) continue;
    if (kill) {
      it->second.kill_requested = true;
      it->second.kill_reported = false;
      ::kill(c, SIGKILL);
    } else {
      detach_now(it->second);
    }
  }
}

// ---------------------------------------------------------------------------
// Registers

std::string ProcessTarget::target_xml() const { return x86::target_xml(); }

std::vector<int> ProcessTarget::expedited_registers() const {
  return {x86::fp_regno(), x86::sp_regno(), x86::pc_regno()};
}

Result<x86::ThreadRegisters*> ProcessTarget::regs_of(ThreadRef r, bool with_fp) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  if (!t->regs) {
    auto regs = x86::ThreadRegisters::fetch(t->tid, with_fp);
    if (!regs) return regs.error();
    t->regs = std::move(*regs);
  } else if (with_fp) {
    auto st = t->regs->load_fp(t->tid);
    if (!st) return st.error();
  }
  return &*t->regs;
}

Result<std::string> ProcessTarget::read_registers(ThreadRef r) {
  auto regs = regs_of(r);
  if (!regs) return regs.error();
  return (*regs)->read_all();
}

Status ProcessTarget::write_registers(ThreadRef r, const std::string& data) {
  auto regs = regs_of(r);
  if (!regs) return regs.error();
  auto st = (*regs)->write_all(data);
  if (!st) return st;
  return (*regs)->store(find_thread(r)->tid);
}

Result<std::string> ProcessTarget::read_register(ThreadRef r, int regno) {
  auto regs = regs_of(r, !x86::is_gpr(regno));
  if (!regs) return regs.error();
  return (*regs)->read(regno);
}

Status ProcessTarget::write_register(ThreadRef r, int regno, const std::string& value) {
  auto regs = regs_of(r, !x86::is_gpr(regno));
  if (!regs) return regs.error();
  auto st = (*regs)->write(regno, value);
  if (!st) return st;
  return (*regs)->store(find_thread(r)->tid);
}

// ---------------------------------------------------------------------------
// Memory

Result<std::string> ProcessTarget::read_memory(int pid, uint64_t addr, std::size_t len) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  if (p->mem_fd < 0) return make_error(5, "process memory is not readable");
  std::string buf(len, '\0');
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(p->mem_fd, buf.data() + got, len - got, static_cast<off_t>(addr + got));
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == 0 && len > 0) return make_error(14, "cannot read memory at 0x" + std::to_string(addr));
  buf.resize(got);
  // Breakpoints are invisible: show the original bytes.
  for (auto it = p->breakpoints.lower_bound(addr); it != p->breakpoints.end() && it->first < addr + got; ++it)
    buf[it->first - addr] = static_cast<char>(it->second);
  return buf;
}

Status ProcessTarget::write_memory(int pid, uint64_t addr, const std::string& data) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  if (p->mem_fd < 0) return make_error(5, "process memory is not writable");
  std::string out = data;
  // Writes over an inserted breakpoint change what it will restore.
  for (auto it = p->breakpoints.lower_bound(addr); it != p->breakpoints.end() && it->first < addr + data.size(); ++it) {
    it->second = static_cast<uint8_t>(data[it->first - addr]);
    out[it->first - addr] = static_cast<char>(0xCC);
  }
  ssize_t n = ::pwrite(p->mem_fd, out.data(), out.size(), static_cast<off_t>(addr));
  if (n != static_cast<ssize_t>(out.size())) return make_error(14, "cannot write memory");
  return ok_status();
}

// ---------------------------------------------------------------------------
// Breakpoints

bool ProcessTarget::exit_pending(int pid) const {
  auto it = procs_.find(pid);
  if (it != procs_.end() && it->second.kill_requested) return true;
  for (auto& ev : orphan_events_)
    if (ev.thread.pid == pid) return true;
  return false;
}

Status ProcessTarget::insert_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) {
  Process* p = find_process(pid);
  // gdb may still plant breakpoints in a process ended by ".kill" that it
  // has not yet been told about: nothing to do there.
  if (!p && exit_pending(pid)) return ok_status();
  if (!p) return make_error(3, "no such process");
  if (type == BreakpointType::Software) {
    if (auto it = p->breakpoints.find(addr); it != p->breakpoints.end()) {
      // Already ours, but a vfork child shares its parent's memory: the
      // other one's removal may have put the original byte back.
      uint8_t now = 0;
      uint8_t int3 = 0xCC;
      if (p->mem_fd >= 0 && ::pread(p->mem_fd, &now, 1, static_cast<off_t>(addr)) == 1 && now != 0xCC &&
          ::pwrite(p->mem_fd, &int3, 1, static_cast<off_t>(addr)) != 1)
        return make_error(14, "cannot write a breakpoint");
      return ok_status();
    }
    uint8_t orig = 0;
    if (p->mem_fd < 0 || ::pread(p->mem_fd, &orig, 1, static_cast<off_t>(addr)) != 1)
      return make_error(14, "cannot read memory for a breakpoint");
    uint8_t int3 = 0xCC;
    if (::pwrite(p->mem_fd, &int3, 1, static_cast<off_t>(addr)) != 1)
      return make_error(14, "cannot write a breakpoint");
    p->breakpoints[addr] = orig;
    p->removed_breakpoints.erase(addr);
    return ok_status();
  }
  int len = type == BreakpointType::Hardware ? 1 : static_cast<int>(kind);
  auto st = p->debug_regs.add(static_cast<int>(type), addr, len);
  if (!st) return st;
  for (auto& [tid, t] : threads_)
    if (t.pid == p->pid && !t.fresh) p->debug_regs.apply(tid);
  return ok_status();
}

Status ProcessTarget::remove_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) {
  Process* p = find_process(pid);
  if (!p && exit_pending(pid)) return ok_status();
  if (!p) return make_error(3, "no such process");
  if (type == BreakpointType::Software) {
    auto it = p->breakpoints.find(addr);
    if (it == p->breakpoints.end()) return ok_status();
    uint8_t orig = it->second;
    p->breakpoints.erase(it);
    if (p->removed_breakpoints.size() > 4096) p->removed_breakpoints.clear();
    p->removed_breakpoints.insert(addr);
    if (p->mem_fd < 0 || ::pwrite(p->mem_fd, &orig, 1, static_cast<off_t>(addr)) != 1)
      return make_error(14, "cannot remove a breakpoint");
    return ok_status();
  }
  int len = type == BreakpointType::Hardware ? 1 : static_cast<int>(kind);
  auto st = p->debug_regs.remove(static_cast<int>(type), addr, len);
  if (!st) return st;
  for (auto& [tid, t] : threads_)
    if (t.pid == p->pid && !t.fresh) p->debug_regs.apply(tid);
  return ok_status();
}

// ---------------------------------------------------------------------------
// Documents

Result<std::string> ProcessTarget::siginfo(ThreadRef r) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  siginfo_t si{};
  if (t->interrupt_stop) {
    // Stopped by our PTRACE_INTERRUPT, whose siginfo is a SIGTRAP of
    // ptrace's own: show what gdbserver's threads show there, the SIGSTOP
    // it stops them with (tkill from the stub), not a SIGTRAP that reads
    // like a breakpoint (gdb.threads/attach-into-signal's $_siginfo).
    si.si_signo = SIGSTOP;
    si.si_code = SI_TKILL;
    si.si_pid = ::getpid();
    si.si_uid = ::getuid();
    return std::string(reinterpret_cast<const char*>(&si), sizeof si);
  }
  if (ptrace(PTRACE_GETSIGINFO, t->tid, nullptr, &si) != 0) return errno_error("siginfo");
  return std::string(reinterpret_cast<const char*>(&si), sizeof si);
}

Result<std::size_t> ProcessTarget::write_siginfo(ThreadRef r, uint64_t offset, const std::string& data) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  siginfo_t si{};
  if (offset >= sizeof si) return make_error(22, "offset past the end of siginfo");
  if (ptrace(PTRACE_GETSIGINFO, t->tid, nullptr, &si) != 0) return errno_error("siginfo");
  std::size_t n = std::min<std::size_t>(data.size(), sizeof si - offset);
  std::memcpy(reinterpret_cast<char*>(&si) + offset, data.data(), n);
  if (ptrace(PTRACE_SETSIGINFO, t->tid, nullptr, &si) != 0) return errno_error("siginfo");
  return n;
}

Result<uint64_t> ProcessTarget::tls_address(ThreadRef r, uint64_t offset, uint64_t lm) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  Process* p = find_process(t->pid);
  if (!p) return make_error(3, "no such process");
  if (!p->thread_db) {
    int pid = p->pid;
    auto read = [this, pid](uint64_t addr, void* buf, std::size_t len) {
      auto data = read_memory(pid, addr, len);
      if (!data || data->size() != len) return false;
      std::memcpy(buf, data->data(), len);
      return true;
    };
    auto write = [this, pid](uint64_t addr, const void* buf, std::size_t len) {
      return static_cast<bool>(write_memory(pid, addr, std::string(static_cast<const char*>(buf), len)));
    };
    auto db = ThreadDb::open(pid, thread_db_search_path_, read, write);
    if (!db) return db.error();
    p->thread_db = std::move(*db);
  }
  return p->thread_db->tls_address(t->tid, offset, lm);
}

// As gdbserver, a process whose libthread_db is loaded keeps it; the path
// applies to the next load.
std::string ProcessTarget::set_thread_db_search_path(const std::string& path) {
  thread_db_search_path_ = path.empty() ? kDefaultThreadDbSearchPath : path;
  return thread_db_search_path_;
}

Result<std::string> ProcessTarget::auxv(int pid) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  return procdocs::read_auxv(p->pid);
}

Result<std::string> ProcessTarget::exec_file(int pid) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  return procdocs::exec_file(p->pid);
}

Result<std::string> ProcessTarget::libraries_svr4(int pid, const std::string& annex) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  auto av = procdocs::read_auxv(p->pid);
  if (!av) return av.error();
  auto which = procdocs::parse_svr4_annex(annex);
  if (!which) return which.error();
  int id = p->pid;
  return procdocs::libraries_svr4(*av, [this, id](uint64_t a, std::size_t n) { return read_memory(id, a, n); },
                                  *which);
}

// gdb's "info os": the same /proc listing the local-kernel target serves.
Result<std::string> ProcessTarget::osdata(const std::string& annex) {
  if (annex.empty()) return lk::osdata_types();
  if (annex == "processes") return lk::osdata_processes("/proc");
  return make_error(22, "unknown OS data type '" + annex + "'");
}

Result<MemoryRegion> ProcessTarget::memory_region(int pid, uint64_t addr) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  return procdocs::memory_region(p->pid, addr);
}

}  // namespace dbgstub
