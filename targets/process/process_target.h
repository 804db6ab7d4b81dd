// User-mode target: Linux x86-64 processes under ptrace, all-stop.
//
// Every ptrace call happens on the event loop's thread (the tracer thread),
// driven by wait statuses from ChildEvents. Threads are attached with
// PTRACE_SEIZE so that stopping them (PTRACE_INTERRUPT) never queues a
// signal that could leak to the program after a detach.
#pragma once
#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "targets/process/child_events.h"
#include "targets/process/thread_db.h"
#include "targets/process/x86_registers.h"
#include "targets/target.h"

namespace dbgstub {

class ProcessTarget : public Target, public ProcessLauncher {
 public:
  ProcessTarget(asio::io_context& io, ChildEvents& events);
  ~ProcessTarget() override;

  Mode mode() const override { return Mode::User; }
  std::string describe() const override;
  // Every optional feature: it is what gdbserver offers for a process.
  TargetCapabilities capabilities() const override {
    return {.exec_file = true, .auxv = true, .libraries_svr4 = true, .siginfo = true, .osdata = true,
            .fork_events = true, .exec_events = true, .catch_syscalls = true, .range_step = true};
  }
  void set_stop_handler(StopHandler h) override { on_stop_ = std::move(h); }

  std::vector<ProcessInfo> processes() const override;
  bool has_processes() const override;
  std::vector<int> process_ids() const override;
  std::vector<ThreadRef> threads() const override;
  bool thread_alive(ThreadRef t) const override;
  std::string thread_name(ThreadRef t) const override;
  std::optional<StopEvent> last_stop() const override { return last_stop_; }
  bool running() const override { return phase_ != Phase::Stopped; }
  bool exit_report_owed() const override;
  std::optional<StopEvent> take_pending_stop(ThreadRef t) override;

  std::string target_xml() const override;
  Result<std::string> read_registers(ThreadRef t) override;
  Status write_registers(ThreadRef t, const std::string& data) override;
  Result<std::string> read_register(ThreadRef t, int regno) override;
  Status write_register(ThreadRef t, int regno, const std::string& value) override;
  std::vector<int> expedited_registers() const override;

  Result<std::string> read_memory(int pid, uint64_t addr, std::size_t len) override;
  Status write_memory(int pid, uint64_t addr, const std::string& data) override;

  Status insert_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) override;
  Status remove_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) override;

  Status resume(const std::vector<ResumeAction>& actions) override;
  Status interrupt() override;

  Status kill_process(int pid, const KillOptions& how = {}) override;
  void set_child_policy(const ChildPolicy& policy) override;
  Status detach_process(int pid) override;
  void release_all() override;

  ProcessLauncher* launcher() override { return this; }
  Result<std::string> auxv(int pid) override;
  Result<std::string> siginfo(ThreadRef t) override;
  Result<std::size_t> write_siginfo(ThreadRef t, uint64_t offset, const std::string& data) override;
  Result<uint64_t> tls_address(ThreadRef t, uint64_t offset, uint64_t lm) override;
  std::string set_thread_db_search_path(const std::string& path) override;
  Status set_catch_syscalls(int pid, std::optional<std::vector<int>> syscalls) override;
  Result<std::string> exec_file(int pid) override;
  Result<std::string> libraries_svr4(int pid, const std::string& annex) override;
  Result<MemoryRegion> memory_region(int pid, uint64_t addr) override;
  Result<std::string> osdata(const std::string& annex) override;

  Status launch(const LaunchSpec& spec) override;
  Status attach(int pid) override;

  // Signals reported to the debugger only if not in this set ("QPassSignals").
  void set_pass_signals(const std::set<int>& s) override { pass_signals_ = s; }
  void set_program_signals(const std::set<int>& s) override { program_signals_ = s; }
  bool set_breakpoint_filter(BreakpointFilter f) override {
    filter_ = std::move(f);
    return true;
  }

 private:
  struct Thread {
    pid_t tid = 0, pid = 0;
    bool stopped = false;       // in a ptrace-stop that we have seen
    bool stop_wanted = false;   // PTRACE_INTERRUPT sent, stop not seen yet
    bool fresh = false;         // clone child before its first stop
    bool stepping = false;
    bool step_unfinished = false;  // single-stepped, its trap not seen yet
    uint64_t range_start = 0, range_end = 0;  // range stepping: step on while pc is in here
    int stop_signal = 0;        // signal of the signal-delivery-stop it sits in
    bool signal_stop = false;   // in a signal-delivery-stop: PTRACE_CONT's signal is delivered
    bool interrupt_stop = false;  // in a PTRACE_EVENT_STOP (our interrupt, a new thread's first stop)
    bool zombie = false;        // an exited leader whose other threads live on
    // Between a syscall-entry stop (or a ptrace event, all of which come
    // from inside a system call) and its return: the next syscall stop is
    // the return (gdbserver's syscall_state).
    bool in_syscall = false;
    std::vector<int> queued_signals;  // asked for by the debugger, not delivered yet
    std::multiset<int> injected;      // sent with tgkill: their stops are ours, not news
    std::optional<StopEvent> pending;  // seen during a stop-all, not reported yet
    std::optional<x86::ThreadRegisters> regs;  // cache, valid while stopped
  };
  struct Process {
    pid_t pid = 0;
    bool attached = false;
    bool launching = false;     // launched, exec not seen yet
    int execs_to_go = 1;        // execs until the program proper (2 with a wrapper)
    bool attaching = false;     // attached, initial stops not all seen
    bool kill_requested = false;
    bool kill_reported = false;  // report the exit at the next resume
    // A child followed only for .childdbg / -o while the debugger did not
    // ask for fork events: it runs free under our tracing, unseen by the
    // debugger (listed by |*), its signals passed straight on.
    bool hidden = false;
    int index = 0;
    int parent = 0;
    ProcessInfo::Origin origin = ProcessInfo::Origin::Created;
    int mem_fd = -1;
    std::optional<int> leader_exit_status;  // from the leader's PTRACE_EVENT_EXIT stop
    std::map<uint64_t, uint8_t> breakpoints;  // addr -> original byte
    std::set<uint64_t> removed_breakpoints;   // to recognise late SIGTRAPs from them
    x86::DebugRegisterState debug_regs;
    // gdb's "catch syscall" (QCatchSyscalls): none = off, empty = every
    // system call, else these numbers. Kept across exec, as gdbserver.
    std::optional<std::vector<int>> catch_syscalls;
    // libthread_db's view of the process, loaded at the first TLS request
    // that finds it (dropped at exec: a new program, maybe another libc).
    std::shared_ptr<ThreadDb> thread_db;
  };
  enum class Phase { Stopped, Running, Stopping };

  void on_status(pid_t tid, int status);
  void on_thread_exit(Thread& t, int status);
  void on_process_exit(pid_t pid, int status);
  void on_ptrace_event(Thread& t, int event, int sig);
  void on_syscall_stop(Thread& t);
  int signal_behind_interrupt(pid_t tid) const;
  Result<int> seize_new_threads(pid_t pid);
  bool catches_syscall(const Process& p, int nr) const;
  StopEvent classify_sigtrap(Thread& t);
  void add_thread(pid_t pid, pid_t tid, bool fresh);
  void remove_thread(pid_t tid);
  void forget_threads(pid_t pid, pid_t keep = 0);
  void report(Thread& t, StopEvent ev);
  void stop_all_others();
  void maybe_finish_stop();
  void maybe_no_resumed(bool confirmed = false);
  void check_zombie_leaders();
  bool group_exiting(pid_t pid) const;
  void resume_thread(Thread& t, bool step, int sig);
  void open_mem(Process& p);
  void close_mem(Process& p);
  Process* find_process(int pid);
  Thread* find_thread(ThreadRef t);
  // The thread's cached registers; with_fp: the x87/SSE/AVX state too.
  Result<x86::ThreadRegisters*> regs_of(ThreadRef t, bool with_fp = true);
  bool pending_still_valid(Thread& t, const ResumeAction& a);
  bool pending_still_current(Thread& t);
  bool in_step_range(Thread& t);
  bool leader_zombie(Thread& t);
  bool unreported_child(pid_t pid) const;
  void drop_unreported_children(pid_t parent, bool kill);
  void give_terminal(pid_t pid);
  void take_back_terminal(pid_t pid);
  void detach_now(Process& p);
  bool deliver_fatal_signal(Process& p);
  bool runs_free(const Thread& t) const;
  bool exit_pending(int pid) const;  // ended by .kill, debugger not told yet
  void emit(const StopEvent& ev);
  void post_stop(const StopEvent& ev);
  static bool covers(const std::vector<ResumeAction>& actions, pid_t pid);

  asio::io_context& io_;
  ChildEvents& events_;
  StopHandler on_stop_;
  std::map<pid_t, Process> procs_;
  std::map<pid_t, Thread> threads_;
  Phase phase_ = Phase::Stopped;
  std::optional<StopEvent> reporting_;   // chosen event of the stop in progress
  bool interrupt_requested_ = false;
  bool posted_stop_ = false;  // post_stop(): a stop is on its way
  std::optional<StopEvent> posted_;  // that stop (a fork's child stays unreported until it is out)
  bool release_pending_ = false;
  std::optional<StopEvent> last_stop_;
  std::vector<StopEvent> orphan_events_;  // exits seen while stopped, or of processes not resumed
  // The actions of the resume in progress; a launch or attach runs all.
  std::vector<ResumeAction> resumed_ = {ResumeAction{}};
  std::set<int> pass_signals_;
  std::optional<std::set<int>> program_signals_;  // none: QProgramSignals not seen
  int detach_signal(const Thread& t) const;
  ChildPolicy child_policy_;
  std::string thread_db_search_path_ = kDefaultThreadDbSearchPath;
  int next_index_ = 0;
  bool finish_retry_ = false;  // retry_timer_ re-checks a stop waiting on a leader
  asio::steady_timer retry_timer_;
  bool no_resumed_check_ = false;  // no_resumed_timer_ confirms a "no resumed threads" stop
  asio::steady_timer no_resumed_timer_;
  // The terminal on our stdin, made the launched program's while it lives
  // (as gdbserver's post_fork_inferior); tty_owner_ is its pid, 0 if none.
  pid_t tty_owner_ = 0;
  pid_t tty_saved_pgrp_ = -1;
  long trace_options() const;
  // Trace options of thread `tid` of `pid`: see the definition.
  long options_for(pid_t pid, pid_t tid, bool launched) const;
  long options_for(const Thread& t) const;

  // Stepping a thread over a breakpoint the filter said not to report
  // (target-side conditions): the other threads are stopped first (Parking)
  // so that none runs past the breakpoint while its int3 is out for the
  // single-step (Stepping); then everything parked runs on.
  struct StepOver {
    pid_t pid = 0, tid = 0;
    uint64_t addr = 0;
    bool stepping = false;      // int3 removed, the thread single-steps
    std::set<pid_t> parked;     // threads stopped for this, to resume after
  };
  bool filtered_out(Thread& t, const StopEvent& ev);
  bool on_step_over_status(Thread& t, int status);
  void advance_step_over();
  void end_step_over();
  BreakpointFilter filter_;
  std::optional<StepOver> step_over_;
  void on_fork(Thread& t, int event);
};

}  // namespace dbgstub
