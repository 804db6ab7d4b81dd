// The one interface every target agent implements: a Linux process tree
// (user mode), a VM (kernel mode) or the local kernel. It says what a
// target can do and nothing about protocols or policy: the server decides
// what a debugger's request means for the session's mode and then calls
// these primitives.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace dbgstub {

enum class Mode { User, Kernel, LocalKernel };
const char* mode_name(Mode m);

struct ThreadRef {
  int pid = 0;
  int tid = 0;
  bool operator==(const ThreadRef&) const = default;
};

// Why a thread stopped (or a process ended), in protocol-neutral terms.
struct StopEvent {
  enum class Kind {
    Signal,      // thread stopped with `signal` (SIGTRAP for breaks/steps)
    Exited,      // process exited with `exit_code`
    Terminated,  // process killed by `signal`
    NoProcess,   // nothing left to run: no thread, or none resumed (the rest stay stopped)
  };
  // Start: the first stop after launch or attach. Spurious: a target's
  // internal note that a stop is no news (never reported).
  // SyscallEntry/SyscallReturn: a caught system call (`syscall` its number).
  enum class Reason { None, SwBreak, HwBreak, Watch, ReadWatch, AccessWatch, Step, Fork, VFork, VForkDone, Exec, Clone, Interrupt, Start, Spurious, SyscallEntry, SyscallReturn };
  Kind kind = Kind::Signal;
  Reason reason = Reason::None;
  ThreadRef thread;
  int signal = 0;
  int exit_code = 0;
  uint64_t data_addr = 0;         // watchpoint address
  ThreadRef child;                // fork/vfork child
  std::string exec_path;          // exec
  int syscall = 0;                // syscall entry/return: the system call's number
};

struct ResumeAction {
  enum class Kind { Continue, Step, Stop };
  Kind kind = Kind::Continue;
  int signal = 0;                 // delivered on resume (0 = none)
  std::optional<ThreadRef> thread;  // none = every thread without its own action
  std::optional<uint64_t> addr;   // legacy "c ADDR": resume at ADDR
  // Range stepping (vCont;r): a Step that goes on stepping while the pc
  // stays in [range_start, range_end). Targets without range stepping
  // (capabilities().range_step false) take it as one step.
  uint64_t range_start = 0, range_end = 0;
  bool ranged() const { return kind == Kind::Step && range_start < range_end; }
};

enum class BreakpointType { Software = 0, Hardware = 1, WriteWatch = 2, ReadWatch = 3, AccessWatch = 4 };

struct MemoryRegion {
  uint64_t start = 0, size = 0;   // size 0: unmapped up to `start + size` unknown
  bool mapped = false;
  bool read = false, write = false, exec = false;
  std::string name;
};

// What a launched program gets. Environment is the full list NAME=VALUE.
struct LaunchSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  bool disable_aslr = true;   // gdbserver's default
  // Run argv through this program (gdbserver's --wrapper): the stop comes
  // after the wrapper has exec'd the program itself.
  std::vector<std::string> wrapper;
  // stdin from /dev/null and stdout to stderr (when the protocol uses them).
  bool redirect_stdio = false;
  // The program, already opened (O_PATH, close-on-exec) and checked against
  // an allow-list: exec'd through this descriptor (execveat), so what was
  // checked is what runs. -1: by argv[0]'s path. Not used with a wrapper.
  int exec_fd = -1;
};

// Capability of targets that can start or attach to programs (user mode).
// Both complete asynchronously with a stop event (SIGTRAP) from the stop
// handler; a program that can't be exec'd ends with exit code 127.
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  virtual Status launch(const LaunchSpec& spec) = 0;
  virtual Status attach(int pid) = 0;
};

struct ProcessInfo {
  enum class Origin { Created, Attached, Child };
  int pid = 0;
  int parent_pid = 0;
  int index = 0;          // stable number while the process lives (WinDbg's |N)
  Origin origin = Origin::Created;
  std::string name;
  std::string executable;
  bool attached = false;  // attached to (detach on disconnect) vs launched (kill)
};

// How to end a process now (user mode).
struct KillOptions {
  // Deliver the signal the process is stopped with (a SIGSEGV, say) as
  // the way it ends, instead of SIGKILL: WinDbg's ".kill /n".
  bool deliver_pending_signal = false;
  // Report the exit to the debugger at its next resume or stop query
  // ("monitor .kill"); otherwise the exit is silent (k, vKill).
  bool report_exit = false;
};

// Which child processes are followed, and which events are reported.
struct ChildPolicy {
  bool follow = false;         // trace children of fork/vfork
  bool report_fork = false;    // the debugger understands fork stops
  bool report_vfork = false;   // ... vfork / vforkdone stops
  bool report_exec = false;    // ... exec stops
};

// A command a target offers to the user ("monitor NAME ARGS"), such as
// symbol lookup in a kernel. Output is text; ok=false makes it an error.
struct TargetCommand {
  std::string name;
  std::string help;  // one line
  std::function<std::pair<bool, std::string>(const std::string& args)> run;
};

// A process of a machine's operating system, as a kernel debugger sees it.
struct GuestProcess {
  uint64_t address = 0;        // its kernel object (Linux: the task_struct)
  int pid = 0;                 // the id its users see (Linux: the tgid)
  std::string name;
  bool kernel_thread = false;  // no user space: nothing to end
  bool idle = false;           // a CPU's idle task
  bool exiting = false;        // exiting, or exited and not yet reaped (a zombie)
  // When it started, in ns since the guest booted, where known: with the
  // pid, it names this process and no later one that reused the pid.
  std::optional<uint64_t> start_ns;
};

// Capability of kernel-mode targets that see the processes of the guest's
// operating system (read from memory while the machine is halted) and can
// end one from inside it (while it runs).
class GuestProcesses {
 public:
  virtual ~GuestProcesses() = default;
  virtual Result<std::vector<GuestProcess>> list() = 0;
  virtual Result<GuestProcess> at(uint64_t address) = 0;
  // The process CPU `cpu` (from 0) was running when the machine stopped.
  virtual Result<GuestProcess> current(unsigned cpu) = 0;
  // Ends `p` inside the running guest; `done` gets the outcome (a process
  // that has already gone: error code ESRCH). `notice` gets lines worth
  // showing the debugger meanwhile (a busy guest agent); it may be empty.
  virtual void terminate(const GuestProcess& p, std::function<void(Status)> done,
                         std::function<void(const std::string&)> notice) = 0;
  // terminate() wants the machine halted, and leaves it halted (it runs
  // the machine itself for a moment: a call into the guest kernel, no
  // agent): it is asked just before the machine is resumed or let go,
  // rather than just after.
  virtual bool terminates_while_halted() const { return false; }
  // Monitor commands on the guest OS (e.g. its kernel's symbols).
  virtual std::vector<TargetCommand> commands() { return {}; }
};

// What a target implements of Target's optional methods, in one place.
// The GDB front end offers a debugger a feature (qSupported, vCont?) only
// if the target has it, as the Rust gdbstub crate derives its protocol
// features from what a target implements: a VM then never offers a
// process's executable or auxv, which gdb would ask for and get E5f.
// A method whose flag is false keeps its default (error 95), for a
// debugger that asks anyway. Optional interfaces (launcher(),
// guest_processes()) say so by being there and are not repeated here.
struct TargetCapabilities {
  bool exec_file = false;       // exec_file(): qXfer:exec-file:read
  bool auxv = false;            // auxv(): qXfer:auxv:read
  bool libraries_svr4 = false;  // libraries_svr4(): qXfer:libraries-svr4:read
  bool siginfo = false;         // siginfo(), write_siginfo(): qXfer:siginfo:read, :write
  bool osdata = false;          // osdata(): qXfer:osdata:read
  // set_child_policy() follows fork and vfork children and reports their
  // stops (fork-events, vfork-events), and reports exec stops (exec-events).
  bool fork_events = false;
  bool exec_events = false;
  bool catch_syscalls = false;  // set_catch_syscalls(): QCatchSyscalls
  bool range_step = false;      // resume() honours a Step's range: vCont;r
};

class Target {
 public:
  using StopHandler = std::function<void(const StopEvent&)>;
  virtual ~Target() = default;

  virtual Mode mode() const = 0;
  virtual std::string describe() const = 0;
  // Which optional methods below this target implements (none by default).
  virtual TargetCapabilities capabilities() const { return {}; }

  // Stop events arrive asynchronously, on the event loop's thread, once
  // after every resume() or interrupt().
  virtual void set_stop_handler(StopHandler h) = 0;

  // --- processes and threads -------------------------------------------
  // Asked when a debugger's session starts (its first packet): an error
  // (a VM whose gdbstub does not answer) is that packet's reply, the one
  // reply gdb shows whole, instead of a session of empty answers.
  virtual Status reachable() { return ok_status(); }
  virtual std::vector<ProcessInfo> processes() const = 0;
  // Cheap "is anything being debugged": checked after every packet.
  virtual bool has_processes() const { return !processes().empty(); }
  // The pids processes() lists, without reading what describes them (a
  // process target reads each one's /proc files): asked for per packet.
  virtual std::vector<int> process_ids() const {
    std::vector<int> out;
    for (auto& p : processes()) out.push_back(p.pid);
    return out;
  }
  virtual std::vector<ThreadRef> threads() const = 0;
  virtual bool thread_alive(ThreadRef t) const = 0;
  virtual std::string thread_name(ThreadRef /*t*/) const { return ""; }
  // Stop that caused the current all-stop state (the "?" query).
  virtual std::optional<StopEvent> last_stop() const = 0;
  virtual bool running() const = 0;
  // An exit the debugger has not been told of yet (after "monitor .kill").
  virtual bool exit_report_owed() const { return false; }
  // While stopped: an event thread t had, held while another thread's was
  // reported, handed over (and forgotten) rather than waiting for t's next
  // resume. Non-stop answers a request to stop t with it.
  virtual std::optional<StopEvent> take_pending_stop(ThreadRef /*t*/) { return std::nullopt; }

  // --- registers: layout described by target.xml, raw little-endian bytes
  virtual std::string target_xml() const = 0;
  virtual Result<std::string> read_registers(ThreadRef t) = 0;            // 'g' layout
  virtual Status write_registers(ThreadRef t, const std::string& data) = 0;
  virtual Result<std::string> read_register(ThreadRef t, int regno) = 0;
  virtual Status write_register(ThreadRef t, int regno, const std::string& value) = 0;
  // Register numbers of pc, sp, fp for expedited stop replies.
  virtual std::vector<int> expedited_registers() const = 0;

  // --- memory (of a process; kernel targets ignore pid) -----------------
  virtual Result<std::string> read_memory(int pid, uint64_t addr, std::size_t len) = 0;
  virtual Status write_memory(int pid, uint64_t addr, const std::string& data) = 0;

  // --- breakpoints and watchpoints --------------------------------------
  virtual Status insert_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) = 0;
  virtual Status remove_breakpoint(int pid, BreakpointType type, uint64_t addr, uint64_t kind) = 0;

  // --- target-side breakpoint conditions (optional) ----------------------
  // Consulted when a thread hits a software or hardware breakpoint at
  // `addr` while the target runs, with that thread stopped (its registers
  // and memory readable): false means "not a stop" (a condition was false,
  // or commands ran instead), and the thread steps over the breakpoint and
  // goes on without a stop being reported. Returns false if the target
  // can't do this (conditions stay with the debugger).
  using BreakpointFilter = std::function<bool(ThreadRef t, uint64_t addr)>;
  virtual bool set_breakpoint_filter(BreakpointFilter /*f*/) { return false; }

  // --- execution control -----------------------------------------------
  virtual Status resume(const std::vector<ResumeAction>& actions) = 0;
  virtual Status interrupt() = 0;

  // --- ending ------------------------------------------------------------
  // Ends the process now (user mode). Kernel targets schedule instead; the
  // server's kill policy decides which of these is called.
  virtual Status kill_process(int pid, const KillOptions& how = {}) = 0;
  virtual Status detach_process(int pid) = 0;
  // --- optional capabilities and documents -----------------------------
  virtual ProcessLauncher* launcher() { return nullptr; }
  virtual void set_child_policy(const ChildPolicy& /*policy*/) {}
  virtual std::vector<TargetCommand> commands() { return {}; }
  // qXfer:osdata:read documents ("processes", ...), gdb's "info os".
  virtual Result<std::string> osdata(const std::string& /*annex*/) { return make_error(95, "no OS data"); }
  // Signals (host numbers) delivered straight to the program, not reported.
  virtual void set_pass_signals(const std::set<int>& /*signals*/) {}
  // Signals (host numbers) the debugger lets the program have
  // ("QProgramSignals"). A detach passes on the signal a thread stopped
  // with only if it is one of these (before any such list: all but SIGTRAP
  // and SIGINT, as gdbserver).
  virtual void set_program_signals(const std::set<int>& /*signals*/) {}
  // Stop at the entry and return of system calls of process `pid` (gdb's
  // "catch syscall"): nullopt = none, an empty list = all, else these
  // numbers. Targets that can't (capabilities().catch_syscalls false): error 95.
  virtual Status set_catch_syscalls(int /*pid*/, std::optional<std::vector<int>> /*syscalls*/) {
    return make_error(95, "catching system calls is not supported");
  }
  // The address of a thread-local variable (gdb's qGetTLSAddr): `offset`
  // in the TLS block of the module whose link_map is at `lm` (0: a static
  // executable). Error 95: not supported here (the empty reply).
  virtual Result<uint64_t> tls_address(ThreadRef /*t*/, uint64_t /*offset*/, uint64_t /*lm*/) {
    return make_error(95, "thread-local storage not supported");
  }
  // Where libthread_db is looked for ("" = the default), as gdbserver's
  // "monitor set libthread-db-search-path"; returns the path now in use.
  virtual std::string set_thread_db_search_path(const std::string& path) { return path; }
  // The kernel's siginfo_t of the signal a thread is stopped with.
  virtual Result<std::string> siginfo(ThreadRef /*t*/) { return make_error(95, "siginfo not available"); }
  // Overwrites `data.size()` bytes of that siginfo_t at `offset` (gdb's
  // "set $_siginfo..."): the signal is delivered so changed. Returns the
  // bytes written (fewer at the end of the structure).
  virtual Result<std::size_t> write_siginfo(ThreadRef /*t*/, uint64_t /*offset*/, const std::string& /*data*/) {
    return make_error(95, "siginfo not available");
  }
  virtual Result<std::string> auxv(int /*pid*/) { return make_error(95, "auxv not available"); }
  virtual Result<std::string> exec_file(int /*pid*/) { return make_error(95, "exec-file not available"); }
  virtual Result<std::string> libraries_svr4(int /*pid*/, const std::string& /*annex*/) { return make_error(95, "library list not available"); }
  virtual Result<MemoryRegion> memory_region(int /*pid*/, uint64_t /*addr*/) {
    return make_error(95, "memory regions not available");
  }

  // Kernel mode: the guest OS's processes, and which CPU a thread is.
  virtual GuestProcesses* guest_processes() { return nullptr; }
  virtual std::optional<unsigned> cpu_of(ThreadRef /*t*/) const { return std::nullopt; }
  // Kernel mode: where the kernel image starts, when known (KD's KernBase).
  virtual std::optional<uint64_t> kernel_base() { return std::nullopt; }

  // Forget everything: on disconnect, kill what we launched, detach the rest.
  virtual void release_all() = 0;
};

}  // namespace dbgstub
