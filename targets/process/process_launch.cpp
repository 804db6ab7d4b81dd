// Starting and ending debugged processes: launch (fork, seize, exec),
// attach, the terminal lent to the program; kill, detach, release.
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <string_view>

#include "common/program_search.h"
#include "targets/process/procfs.h"
#include "targets/process/process_target_impl.h"

namespace dbgstub {

using process_impl::errno_error;
using procfs::each_status_field;
using procfs::thread_group_of;

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

}  // namespace dbgstub
