#include "server/gdb/dispatcher.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/overloaded.h"
#include "protocol/rsp/hex.h"
#include "protocol/rsp/reply.h"
#include "protocol/rsp/signals.h"
#include "server/mode_policy.h"
#include "targets/process/x86_registers.h"

extern char** environ;

namespace dbgstub {
namespace {

constexpr const char* kTriple = "x86_64-pc-linux-gnu";

std::string kv_hex(const std::string& s) { return rsp::to_hex(s); }

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
    }
  }
  return out;
}

}  // namespace

Dispatcher::Dispatcher(Target& target, DispatcherConfig config, SessionHooks hooks)
    : target_(target),
      config_(std::move(config)),
      hooks_(std::move(hooks)),
      host_files_(config_.allow_file_write, config_.policy.files_root),
      disable_randomization_(config_.disable_randomization) {
  for (char** e = environ; e && *e; ++e) environment_.push_back(*e);
  monitor_.add("exit", "Quit dbgstub", [this](const std::string&) {
    // One VM's debugger must not end the servers of the lab's other VMs.
    if (config_.in_lab)
      return MonitorResult{"exit is refused in a lab: it would end every VM's server (stop dbgstub with a signal)\n",
                           false};
    if (hooks_.exit_server) hooks_.exit_server();
    return MonitorResult{"", true};
  });
  monitor_.add(".session", "Show the session mode and target", [this](const std::string&) {
    return MonitorResult{std::string("mode: ") + mode_name(target_.mode()) + "; target: " + target_.describe() + "\n", true};
  });
  monitor_.add("set debug", "<0|1>", "Enable general debugging messages", [this](const std::string& a) {
    if (a != "0" && a != "1") return MonitorResult{"Usage: set debug <0|1>\n", false};
    if (hooks_.set_log_level) hooks_.set_log_level(a == "0" ? "info" : "debug");
    return MonitorResult{a == "1" ? "Debug output enabled.\n" : "Debug output disabled.\n", true};
  });
  monitor_.add("set remote-debug", "<0|1>", "Enable remote protocol debugging messages", [this](const std::string& a) {
    if (a != "0" && a != "1") return MonitorResult{"Usage: set remote-debug <0|1>\n", false};
    if (hooks_.set_packet_log) hooks_.set_packet_log(a == "1");
    return MonitorResult{a == "1" ? "Protocol debug output enabled.\n" : "Protocol debug output disabled.\n", true};
  });
  monitor_.add("set debug-format", "option1[,option2,...]",
               "Add additional information to debugging messages (all, none, timestamp)", [](const std::string& a) {
                 if (a == "all" || a == "timestamp") return MonitorResult{"All extra debug format options enabled.\n", true};
                 if (a == "none") return MonitorResult{"All extra debug format options disabled.\n", true};
                 return MonitorResult{"Unknown debug-format argument: \"" + a + "\"\n", false};
               });
  monitor_.add("set libthread-db-search-path", "[PATH]",
               "Where to look for libthread_db (thread-local storage); no PATH: the default",
               [this](const std::string& a) {
                 // The library is loaded into dbgstub itself. Where the
                 // debugger is confined (a policy: it may write beneath a
                 // files root, say), it must not choose what runs in
                 // dbgstub. (--allow-file-write alone trusts it with every
                 // file dbgstub's user may write, which is as much.)
                 if (!config_.policy.empty())
                   return MonitorResult{"libthread-db-search-path can't be set by the debugger when dbgstub has "
                                        "a policy\n",
                                        false};
                 std::string now = target_.set_thread_db_search_path(a);
                 return MonitorResult{"libthread-db-search-path set to `" + now + "'\n", true};
               });
  for (auto& c : target_.commands()) {
    auto run = c.run;
    monitor_.add(c.name, c.help, [run](const std::string& a) {
      auto [ok, text] = run(a);
      return MonitorResult{text, ok};
    });
  }
  childdbg_ = config_.debug_children;
  add_process_commands();
  add_kernel_commands();
  apply_child_policy();
  monitor_.add("set log-level", "<trace|debug|info|warn|error>", "Set the logging level", [this](const std::string& a) {
    if (hooks_.set_log_level) hooks_.set_log_level(a);
    return MonitorResult{"", true};
  });
}

// ---------------------------------------------------------------------------

void Dispatcher::handle_packet(std::string_view payload) {
  if (restarting_) {
    if (held_.size() < 64) held_.emplace_back(payload);
    return;
  }
  auto req = rsp::parse_request(payload);
  if (!req) {
    spdlog::warn("bad request '{}': {}", std::string(payload.substr(0, 64)), req.error().message);
    hooks_.send(refuse(22, req.error().message));
    return;
  }
  if (ns_.enabled && ns_hold(payload, *req)) return;
  bool deferred = false;
  std::string reply = dispatch(*req, deferred);
  if (deferred) return;
  hooks_.send(std::move(reply));
  if (std::holds_alternative<rsp::StartNoAckMode>(*req) && hooks_.start_no_ack) hooks_.start_no_ack();
}

void Dispatcher::handle_interrupt() {
  if (!target_.running()) {
    // A ^C that crossed a stop reply: gdbserver sends the program SIGINT,
    // which it takes at the next resume; so the next stop is SIGINT.
    if (!ns_.enabled && ModePolicy::allows(target_.mode(), Operation::Interrupt) && target_.has_processes())
      interrupt_pending_ = true;
    return;
  }
  if (ns_.enabled) {
    // gdb stops threads with vCont;t in non-stop mode; a ^C stops them all.
    for (auto& [k, r] : ns_.running) ns_.stop_requested.insert(k);
    ns_reconcile();
    return;
  }
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Interrupt); !st) {
    spdlog::warn("interrupt refused: {}", st.error().message);
    return;
  }
  if (!lldb_client_ && !last_resume_.empty() && !interrupt_thread(last_resume_) &&
      interrupt_thread({ResumeAction{}})) {
    // None of the threads resumed is the SIGINT's process's (gdb stepping
    // another inferior's thread over a breakpoint): gdbserver's SIGINT
    // waits in that stopped process and this resume ends as it would have;
    // the SIGINT stops the next resume of that process.
    interrupt_pending_ = true;
    return;
  }
  interrupt_sent_ = true;
  target_.interrupt();
}

// The thread a ^C's SIGINT is reported on: gdbserver sends SIGINT to the
// process group of the last process it started or attached to (not a fork
// child), and one of that process's threads that `actions` resume takes it
// (a stopped thread takes no signal); its leader here if resumed. None if
// no such thread (a resume of other processes only; a machine's vCPUs).
std::optional<ThreadRef> Dispatcher::interrupt_thread(const std::vector<ResumeAction>& actions) const {
  const ProcessInfo* last = nullptr;
  auto procs = target_.processes();
  for (auto& p : procs)
    if (p.origin != ProcessInfo::Origin::Child && (!last || p.index > last->index)) last = &p;
  if (!last) return std::nullopt;
  auto resumed = [&](ThreadRef t) {
    for (auto& a : actions) {
      bool applies = !a.thread || (a.thread->tid > 0 ? a.thread->tid == t.tid : a.thread->pid <= 0 || a.thread->pid == t.pid);
      if (applies) return a.kind != ResumeAction::Kind::Stop;
    }
    return false;
  };
  std::optional<ThreadRef> any;
  for (ThreadRef t : target_.threads()) {
    if (t.pid != last->pid || !resumed(t)) continue;
    if (t.tid == t.pid) return t;
    if (!any) any = t;
  }
  return any;
}

void Dispatcher::handle_stop(const StopEvent& stop) {
  StopEvent ev = stop;
  if (interrupt_sent_ && !ns_.enabled && ev.kind == StopEvent::Kind::Signal &&
      ev.reason == StopEvent::Reason::Interrupt) {
    // Our ^C's own stop: every thread stopped alike, none is "the" one;
    // name the thread gdbserver's SIGINT would have stopped.
    if (auto th = interrupt_thread(last_resume_)) ev.thread = *th;
  }
  // A stop selects its thread, as in gdbserver; except a non-stop
  // notification, which may come between gdb's Hg and the P it was for.
  if (ev.kind == StopEvent::Kind::Signal && (!ns_.enabled || waiting_for_stop_)) {
    g_thread_ = ev.thread;
    selected_pid_ = ev.thread.pid;
  }
  if (restarting_) {
    restarting_ = false;
    std::vector<std::string> held = std::move(held_);
    held_.clear();
    for (auto& p : held) handle_packet(p);
    return;
  }
  if (ns_.enabled) {
    ns_handle_stop(ev);
    return;
  }
  if (interrupt_sent_) {
    interrupt_sent_ = false;
    // A ^C whose stop another event overtook (a breakpoint hit gdb may
    // just step over): gdbserver's SIGINT would still be pending in the
    // program, so gdb hears of it at the next resume; not lost.
    bool answered = ev.kind != StopEvent::Kind::Signal || ev.signal == SIGINT || ev.reason == StopEvent::Reason::Interrupt;
    if (!answered && !lldb_client_ && target_.has_processes()) {
      spdlog::info("interrupt overtaken by another stop: reporting SIGINT at the next resume");
      interrupt_pending_ = true;
    }
  }
  if (!waiting_for_stop_) return;  // kept as last_stop() for '?'
  waiting_for_stop_ = false;
  hooks_.send(stop_reply(ev));
}

std::string Dispatcher::refuse(int code, const std::string& message) {
  // Logged here; shown by clients that take "E.message". Console output
  // ('O') can't carry it: gdb accepts 'O' only while waiting for a stop or
  // a monitor reply, and would take it for the reply to anything else.
  spdlog::info("refused: {}", message);
  return rsp::reply_error_message(code, message, error_strings_);
}

// ---------------------------------------------------------------------------
// Threads

int Dispatcher::selected_pid() const {
  for (int pid : target_.process_ids())
    if (pid == selected_pid_) return selected_pid_;
  return current_pid();
}

int Dispatcher::current_pid() const {
  if (g_thread_.pid > 0 && target_.thread_alive(g_thread_)) return g_thread_.pid;
  auto pids = target_.process_ids();
  // The thread gdb selected may have exited while its process goes on (gdb
  // reads and writes the memory of running processes in non-stop mode):
  // still that process, as gdbserver (its general thread's pid).
  for (int pid : pids)
    if (g_thread_.pid > 0 && pid == g_thread_.pid) return pid;
  if (!pids.empty()) return pids.front();
  // A machine lists no processes of its own: its vCPU threads' pid.
  return current_thread().pid;
}

ThreadRef Dispatcher::current_thread() const {
  if (g_thread_.tid > 0 && target_.thread_alive(g_thread_)) return g_thread_;
  auto ts = target_.threads();
  return ts.empty() ? ThreadRef{} : ts.front();
}

std::optional<ThreadRef> Dispatcher::resolve(const rsp::ThreadId& t) const {
  auto ts = target_.threads();
  for (auto& r : ts) {
    bool pid_ok = t.pid <= 0 || t.pid == r.pid;
    bool tid_ok = t.tid <= 0 || t.tid == r.tid;
    if (pid_ok && tid_ok) return r;
  }
  return std::nullopt;
}

// The thread a register request is about: lldb names it ("thread-suffix"),
// gdb relies on Hg.
std::optional<ThreadRef> Dispatcher::thread_for(const std::optional<rsp::ThreadId>& named) const {
  if (named) return resolve(*named);
  return current_thread();
}

rsp::ThreadId Dispatcher::wire_id(ThreadRef t) const { return rsp::ThreadId{t.pid, t.tid}; }

std::string Dispatcher::on_set_thread(const rsp::SetThread& h) {
  if (h.thread.tid == -1 && (h.thread.pid <= 0 || h.thread.pid == -1)) {
    if (h.op == 'c') c_thread_all_ = true;
    return rsp::reply_ok();
  }
  if (h.op == 'g' && h.thread.pid <= 0 && h.thread.tid == 0 && g_thread_.tid > 0 && target_.thread_alive(g_thread_)) {
    // "Any thread": the current one while it lives (gdbserver), so that
    // gdb's qC after an attach names the attached process, not the first.
    selected_pid_ = g_thread_.pid;
    return rsp::reply_ok();
  }
  auto r = resolve(h.thread);
  if (!r) return rsp::reply_error(1);
  selected_pid_ = r->pid;
  if (h.op == 'g') {
    g_thread_ = *r;
  } else {
    c_thread_ = *r;
    c_thread_all_ = h.thread.tid <= 0;
  }
  return rsp::reply_ok();
}

std::string Dispatcher::threads_xml() const {
  std::string x = "<?xml version=\"1.0\"?>\n<threads>\n";
  for (auto& t : target_.threads()) {
    x += "<thread id=\"" + rsp::format_thread_id(wire_id(t), multiprocess_) + "\"";
    std::string name = target_.thread_name(t);
    if (!name.empty()) x += " name=\"" + xml_escape(name) + "\"";
    x += "/>\n";
  }
  x += "</threads>\n";
  return x;
}

// ---------------------------------------------------------------------------
// Stop replies

std::string Dispatcher::stop_reply(const StopEvent& ev) {
  std::optional<int64_t> pid;
  if (multiprocess_) pid = ev.thread.pid;
  switch (ev.kind) {
    case StopEvent::Kind::Exited:
      return rsp::build_exit_reply(ev.exit_code, pid);
    case StopEvent::Kind::Terminated:
      return rsp::build_signal_exit_reply(rsp::gdb_signal_from_host(ev.signal), pid);
    case StopEvent::Kind::NoProcess:
      // A client that doesn't know "N" at least gets an error (gdbserver).
      return no_resumed_ ? "N" : rsp::reply_error_message(1, "No unwaited-for children left.", true);
    case StopEvent::Kind::Signal:
      break;
  }
  rsp::StopReply r;
  r.signal = rsp::gdb_signal_from_host(ev.signal);
  // gdb expects the first stop as SIGTRAP (and ignores it); lldb takes a
  // SIGTRAP there for a real one, and would pass a SIGSTOP on to the
  // program when resuming: signal 0 is a plain stop for it.
  if (lldb_client_ && ev.reason == StopEvent::Reason::Start) r.signal = 0;
  r.thread = wire_id(ev.thread);
  for (int regno : target_.expedited_registers()) {
    auto v = target_.read_register(ev.thread, regno);
    if (v) r.registers.emplace_back(regno, *v);
  }
  using R = StopEvent::Reason;
  switch (ev.reason) {
    case R::SwBreak:
      if (swbreak_) r.extras.emplace_back("swbreak", "");
      break;
    case R::HwBreak:
      if (hwbreak_) r.extras.emplace_back("hwbreak", "");
      break;
    case R::Watch: r.extras.emplace_back("watch", rsp::hex_u64(ev.data_addr)); break;
    case R::ReadWatch: r.extras.emplace_back("rwatch", rsp::hex_u64(ev.data_addr)); break;
    case R::AccessWatch: r.extras.emplace_back("awatch", rsp::hex_u64(ev.data_addr)); break;
    case R::Fork: r.extras.emplace_back("fork", rsp::format_thread_id(wire_id(ev.child), multiprocess_)); break;
    case R::VFork: r.extras.emplace_back("vfork", rsp::format_thread_id(wire_id(ev.child), multiprocess_)); break;
    case R::VForkDone: r.extras.emplace_back("vforkdone", ""); break;
    case R::Exec: r.extras.emplace_back("exec", rsp::to_hex(ev.exec_path)); break;
    case R::SyscallEntry: r.extras.emplace_back("syscall_entry", rsp::hex_u64(static_cast<uint64_t>(ev.syscall))); break;
    case R::SyscallReturn: r.extras.emplace_back("syscall_return", rsp::hex_u64(static_cast<uint64_t>(ev.syscall))); break;
    default: break;
  }
  if (list_threads_in_stop_) {
    // lldb: the thread list and pcs, saving a qfThreadInfo round trip,
    // and a reason it understands.
    std::string ids, pcs;
    for (auto& t : target_.threads()) {
      if (!ids.empty()) { ids += ","; pcs += ","; }
      ids += rsp::hex_u64(static_cast<uint64_t>(t.tid));
      auto pc = target_.read_register(t, x86::pc_regno());
      pcs += pc ? rsp::hex_u64(rsp::from_le_bytes(*pc)) : "0";
    }
    r.extras.emplace_back("threads", ids);
    r.extras.emplace_back("thread-pcs", pcs);
    switch (ev.reason) {
      case R::SwBreak:
      case R::HwBreak: r.extras.emplace_back("reason", "breakpoint"); break;
      case R::Step: r.extras.emplace_back("reason", "trace"); break;
      case R::Watch:
      case R::ReadWatch:
      case R::AccessWatch:
        r.extras.emplace_back("reason", "watchpoint");
        r.extras.emplace_back("description", rsp::to_hex(std::to_string(ev.data_addr)));
        break;
      case R::Exec: r.extras.emplace_back("reason", "exec"); break;
      default:
        if (ev.signal != 0 && ev.signal != SIGTRAP) r.extras.emplace_back("reason", "signal");
        break;
    }
  }
  if (disabled("T")) {
    // Only the signal: "S05" (what old stubs send).
    return "S" + rsp::hex_u8(static_cast<uint8_t>(r.signal));
  }
  std::string reply = rsp::build_stop_reply(r, multiprocess_);
  if (disabled("Tthread")) {
    auto at = reply.find("thread:");
    if (at != std::string::npos) reply.erase(at, reply.find(';', at) - at + 1);
  }
  return reply;
}

std::string Dispatcher::on_halt_reason() {
  auto last = target_.last_stop();
  if (!target_.has_processes() && target_.threads().empty()) {
    if (last && (last->kind == StopEvent::Kind::Exited || last->kind == StopEvent::Kind::Terminated))
      return stop_reply(*last);
    return "W00";
  }
  if (last && last->kind == StopEvent::Kind::Signal && target_.thread_alive(last->thread)) {
    return stop_reply(*last);
  }
  StopEvent ev;
  ev.thread = current_thread();
  ev.signal = SIGTRAP;
  return stop_reply(ev);
}

// ---------------------------------------------------------------------------
// Dispatch

std::string Dispatcher::dispatch(const Req& req, bool& deferred) {
  return std::visit(
      Overloaded{
          [&](const rsp::QSupported& q) { return on_supported(q); },
          [&](const rsp::StartNoAckMode&) { return rsp::reply_ok(); },
          [&](const rsp::QueryHaltReason&) { return ns_.enabled ? ns_halt_reason() : on_halt_reason(); },
          [&](const rsp::VCtrlC&) { return ns_ctrl_c(); },
          [&](const rsp::VStopped&) { return ns_.enabled ? ns_vstopped() : rsp::reply_empty(); },
          [&](const rsp::ReadAllRegisters& r) { return on_read_registers(r.thread); },
          [&](const rsp::WriteAllRegisters& w) { return on_write_registers(w); },
          [&](const rsp::ReadRegister& r) { return on_read_register(r); },
          [&](const rsp::WriteRegister& w) { return on_write_register(w); },
          [&](const rsp::ReadMemory& m) { return on_read_memory(m); },
          [&](const rsp::WriteMemory& m) { return on_write_memory(m); },
          [&](const rsp::Breakpoint& b) { return on_breakpoint(b); },
          [&](const rsp::Resume& r) { return on_legacy_resume(r, deferred); },
          [&](const rsp::VContQuery&) {
            if (disabled("vCont")) return std::string();
            return std::string(target_.capabilities().range_step ? "vCont;c;C;s;S;t;r" : "vCont;c;C;s;S;t");
          },
          [&](const rsp::VCont& v) { return disabled("vCont") ? std::string() : on_vcont(v, deferred); },
          [&](const rsp::SetThread& h) { return on_set_thread(h); },
          [&](const rsp::ThreadAlive& t) {
            return resolve(t.thread) ? rsp::reply_ok() : rsp::reply_error(1);
          },
          [&](const rsp::QueryCurrentThread&) {
            if (disabled("qC")) return std::string();
            auto t = current_thread();
            return t.tid ? "QC" + rsp::format_thread_id(wire_id(t), multiprocess_) : std::string("QC0");
          },
          [&](const rsp::ThreadInfoFirst&) {
            if (disabled("qfThreadInfo")) return std::string();
            std::vector<rsp::ThreadId> ids;
            for (auto& t : target_.threads()) ids.push_back(wire_id(t));
            return rsp::build_thread_list(ids, multiprocess_);
          },
          [&](const rsp::ThreadInfoNext&) { return disabled("qfThreadInfo") ? std::string() : std::string("l"); },
          [&](const rsp::QueryAttached& a) {
            // A machine is never ours to end: report it as attached.
            if (target_.mode() != Mode::User) return std::string("1");
            int pid = a.pid ? static_cast<int>(*a.pid) : current_pid();
            for (auto& p : target_.processes())
              if (p.pid == pid) return std::string(p.attached ? "1" : "0");
            return rsp::reply_error(1);
          },
          [&](const rsp::XferRead& x) { return on_xfer(x); },
          [&](const rsp::XferWrite& x) {
            if (x.object != "siginfo") return rsp::reply_empty();
            if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteMemory); !st)
              return refuse(1, st.error().message);
            xfer_cache_key_.clear();  // a read after this must see the change
            auto n = target_.write_siginfo(current_thread(), x.offset, x.data);
            if (!n) return refuse(n.error().code, n.error().message);
            return rsp::hex_u64(*n);
          },
          [&](const rsp::MonitorCommand& m) { return on_monitor(m); },
          [&](const rsp::Detach& d) { return on_detach(d); },
          [&](const rsp::Kill&) { return on_kill(std::nullopt, deferred, true); },
          [&](const rsp::VKill& k) { return on_kill(k.pid, deferred, false); },
          [&](const rsp::VRun& r) { return on_run(r, deferred); },
          [&](const rsp::VAttach& a) { return on_attach(a, deferred); },
          [&](const rsp::PassSignals& p) {
            pass_signals_.clear();
            for (int s : p.signals)
              if (int h = rsp::host_signal_from_gdb(s)) pass_signals_.insert(h);
            target_.set_pass_signals(pass_signals_);
            return rsp::reply_ok();
          },
          [&](const rsp::ProgramSignals& p) {
            std::set<int> program;
            for (int s : p.signals)
              if (int h = rsp::host_signal_from_gdb(s)) program.insert(h);
            target_.set_program_signals(program);
            return rsp::reply_ok();
          },
          [&](const rsp::SetFlag& f) { return on_flag(f); },
          [&](const rsp::CatchSyscalls& c) {
            // As gdbserver: for the current process (gdb's current inferior).
            if (!target_.capabilities().catch_syscalls || !target_.has_processes()) return rsp::reply_error(1);
            std::optional<std::vector<int>> list;
            if (c.enabled) list = c.syscalls;
            auto st = target_.set_catch_syscalls(current_pid(), std::move(list));
            return st ? rsp::reply_ok() : refuse(st.error().code, st.error().message);
          },
          [&](const rsp::SetEnvironment& e) {
            if (e.reset) {
              environment_.clear();
              for (char** p = environ; p && *p; ++p) environment_.push_back(*p);
            } else {
              std::string prefix = e.name + "=";
              auto same_name = [&](const std::string& s) { return s.rfind(prefix, 0) == 0; };
              if (!e.unset) {
                // Bounded as the kernel bounds what exec takes: a client
                // must not grow dbgstub's memory without end. Checked
                // first: a refused value leaves the old one in place.
                constexpr std::size_t kMaxEnvironment = 2 << 20;
                std::size_t total = prefix.size() + e.value.size() + 1;
                for (const auto& s : environment_)
                  if (!same_name(s)) total += s.size() + 1;
                if (total > kMaxEnvironment) return refuse(7, "the environment would exceed 2 MiB");
              }
              std::erase_if(environment_, same_name);
              if (!e.unset) environment_.push_back(prefix + e.value);
            }
            return rsp::reply_ok();
          },
          [&](const rsp::SetWorkingDir& w) {
            working_dir_ = w.dir;
            return rsp::reply_ok();
          },
          [&](const rsp::QueryOffsets&) { return rsp::reply_empty(); },
          [&](const rsp::QuerySymbol&) { return rsp::reply_ok(); },
          [&](const rsp::QueryTStatus&) { return rsp::reply_empty(); },
          [&](const rsp::QueryTlsAddress& q) {
            // As gdbserver: "" if this target can't, E01 on any failure
            // (gdb: "Remote target failed to process qGetTLSAddr request").
            if (!target_.has_processes()) return rsp::reply_error(1);
            auto t = resolve(q.thread);
            if (!t) return rsp::reply_error(1);
            auto addr = target_.tls_address(*t, q.offset, q.lm);
            if (!addr) {
              spdlog::info("qGetTLSAddr: {}", addr.error().message);
              return addr.error().code == 95 ? rsp::reply_empty() : rsp::reply_error(1);
            }
            return rsp::hex_u64(*addr);
          },
          [&](const rsp::QueryHostInfo&) {
            lldb_client_ = true;
            return on_host_info();
          },
          [&](const rsp::QueryProcessInfo&) { return on_process_info(); },
          [&](const rsp::QueryRegisterInfo& r) { return on_register_info(r.regno); },
          [&](const rsp::QueryMemoryRegionInfo& m) { return on_memory_region(m.addr); },
          [&](const rsp::QueryThreadStopInfo& t) { return on_thread_stop_info(t.thread); },
          [&](const rsp::QueryWorkingDir&) {
            char buf[4096];
            std::string cwd = "/proc/" + std::to_string(current_pid()) + "/cwd";
            ssize_t n = ::readlink(cwd.c_str(), buf, sizeof buf);
            if (n <= 0) return rsp::reply_error(1);
            return rsp::to_hex(std::string(buf, static_cast<std::size_t>(n)));
          },
          [&](const rsp::HostFile& f) {
            if (auto st = ModePolicy::allows(target_.mode(), Operation::HostFiles); !st) {
              // Empty, as a stub without host I/O: gdb then reads its local files.
              if (!host_files_refusal_logged_) spdlog::info("vFile refused: {}", st.error().message);
              host_files_refusal_logged_ = true;
              return rsp::reply_empty();
            }
            // gdb asks vFile:pread for as much as PacketSize allows and
            // caches it, though most of its reads (ELF headers, sections)
            // want a few hundred bytes: 64 KiB replies cost gdb ~2 ms each to
            // unescape, ~10 ms per connection. 16 KiB, as gdbserver's.
            constexpr std::size_t kFileReply = 0x8000;
            return host_files_.handle(f, std::min(config_.packet_size, kFileReply) - 16);
          },
          [&](const rsp::JsonRequest&) { return rsp::reply_empty(); },
          [&](const rsp::Unsupported& u) {
            if (u.name == "!") {
              extended_ = true;
              return rsp::reply_ok();
            }
            if (u.name == "R" && extended_ && last_run_) {
              // Restart: run the last program again; gdb waits for no reply.
              for (auto& p : target_.processes())
                if (!p.attached) target_.kill_process(p.pid);
              if (auto st = target_.launcher() ? target_.launcher()->launch(*last_run_) : make_error(1, "no launcher"); !st)
                spdlog::warn("restart failed: {}", st.error().message);
              else
                restarting_ = true;
              deferred = true;
              return std::string();
            }
            spdlog::debug("unsupported packet '{}'", u.name);
            return rsp::reply_empty();
          },
      },
      req);
}

// ---------------------------------------------------------------------------
// Capabilities and flags

std::string Dispatcher::on_supported(const rsp::QSupported& q) {
  // "E.message" whatever the client offered: gdb shows a failed
  // qSupported's reply whole ("Remote failure reply: E.…").
  if (auto st = target_.reachable(); !st) {
    spdlog::info("refused: {}", st.error().message);
    return rsp::reply_error_message(st.error().code, st.error().message, true);
  }
  // What the target has decides what is offered: gdb asks for every
  // document offered (a VM offering exec-file got two E5f's for it). The
  // rest are the server's own and offered to every target. The order is
  // the one a process session has always had: its reply is compared with
  // gdbserver's and pinned by tests/unit/test_dispatcher_supported.cpp.
  const TargetCapabilities caps = target_.capabilities();
  // The environment, working directory and ASLR only set up the next
  // program started (vRun, R): for targets that start programs.
  const bool launches = target_.launcher() != nullptr;
  // A kernel target with the guest's processes answers the "processes"
  // document (guest_osdata_processes) itself.
  const bool osdata = caps.osdata || (target_.mode() == Mode::Kernel && target_.guest_processes());
  for (auto& f : q.features) {
    if (f == "multiprocess+") multiprocess_ = true;
    if (f == "swbreak+") swbreak_ = true;
    if (f == "hwbreak+") hwbreak_ = true;
    if (f == "error-message+") error_strings_ = true;
    // Agreed (and offered back) only if the target has such stops.
    if (f == "fork-events+" && caps.fork_events) fork_events_ = true;
    if (f == "vfork-events+" && caps.fork_events) vfork_events_ = true;
    if (f == "exec-events+" && caps.exec_events) exec_events_ = true;
    if (f == "no-resumed+") no_resumed_ = true;
    if (f == "binary-upload+") binary_upload_ = true;
  }
  apply_child_policy();
  std::vector<std::string> out = {
      "PacketSize=" + rsp::hex_u64(config_.packet_size),
      "QPassSignals+",
      "QProgramSignals+",
      "QStartNoAckMode+",
      "qXfer:features:read+",
  };
  if (caps.auxv) out.push_back("qXfer:auxv:read+");
  if (caps.libraries_svr4) out.push_back("qXfer:libraries-svr4:read+");
  if (caps.exec_file) out.push_back("qXfer:exec-file:read+");
  out.push_back(disabled("threads") ? "qXfer:threads:read-" : "qXfer:threads:read+");
  if (caps.siginfo) out.push_back("qXfer:siginfo:read+");
  if (osdata) out.push_back("qXfer:osdata:read+");
  if (launches)
    for (const char* f : {"QDisableRandomization+", "QEnvironmentHexEncoded+", "QEnvironmentUnset+",
                          "QEnvironmentReset+", "QSetWorkingDir+"})
      out.push_back(f);
  for (const char* f : {"vContSupported+", "QThreadSuffixSupported+", "QListThreadsInStopReply+"}) out.push_back(f);
  if (!disabled("QNonStop")) out.push_back("QNonStop+");
  out.push_back("QThreadEvents+");
  if (multiprocess_) out.push_back("multiprocess+");
  if (fork_events_) out.push_back("fork-events+");
  if (vfork_events_) out.push_back("vfork-events+");
  if (exec_events_) out.push_back("exec-events+");
  if (swbreak_) out.push_back("swbreak+");
  if (hwbreak_) out.push_back("hwbreak+");
  if (error_strings_) out.push_back("error-message+");
  // GDB 16 uses 'x' only if both sides say binary-upload+; its reply is
  // then "b" + data. (lldb probes 'x' with "x0,0" and takes raw data.)
  if (binary_upload_) out.push_back("binary-upload+");
  if (install_breakpoint_filter()) {  // the target evaluates them where it stops
    out.push_back("ConditionalBreakpoints+");
    out.push_back("BreakpointCommands+");
  }
  if (caps.siginfo) out.push_back("qXfer:siginfo:write+");
  if (caps.catch_syscalls) out.push_back("QCatchSyscalls+");
  return rsp::build_supported(out);
}

std::string Dispatcher::on_flag(const rsp::SetFlag& f) {
  if (f.name == "QDisableRandomization") {
    disable_randomization_ = f.value;
    // gdb sends this right before vRun and prints console output that comes
    // with the reply, while it would show a refused vRun only as "failed".
    if (!config_.allow_run)
      hooks_.send(rsp::reply_console_output(
          "dbgstub: starting programs remotely is not allowed (start dbgstub with --allow-run)\n"));
    return rsp::reply_ok();
  }
  if (f.name == "QNonStop") {
    if (disabled("QNonStop")) return rsp::reply_empty();
    if (f.value != ns_.enabled) ns_.reset();
    ns_.enabled = f.value;
    return rsp::reply_ok();
  }
  if (f.name == "QThreadEvents") {
    // gdb turns thread events on while it stops every thread in non-stop
    // mode (and only then); all-stop mode reports no thread exits.
    if (f.value && !ns_.enabled) return refuse(1, "thread events are reported in non-stop mode only");
    ns_.thread_events = f.value;
    return rsp::reply_ok();
  }
  if (f.name == "QListThreadsInStopReply") {
    list_threads_in_stop_ = true;
    return rsp::reply_ok();
  }
  if (f.name == "QThreadSuffixSupported") {
    lldb_client_ = true;
    return rsp::reply_ok();
  }
  if (f.name == "QEnableErrorStrings") {
    error_strings_ = true;
    return rsp::reply_ok();
  }
  if (f.name == "QStartupWithShell") return rsp::reply_ok();  // programs are always exec'd directly
  return rsp::reply_empty();
}

// ---------------------------------------------------------------------------
// Registers and memory

std::string Dispatcher::on_read_registers(std::optional<rsp::ThreadId> t) {
  auto found = thread_for(t);
  if (!found) return rsp::reply_error(1);
  ThreadRef th = *found;
  auto regs = target_.read_registers(th);
  if (!regs) return refuse(regs.error().code, regs.error().message);
  return rsp::to_hex(*regs);
}

std::string Dispatcher::on_write_registers(const rsp::WriteAllRegisters& w) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteRegisters); !st) return refuse(1, st.error().message);
  auto found = thread_for(w.thread);
  if (!found) return rsp::reply_error(1);
  ThreadRef th = *found;
  auto st = target_.write_registers(th, w.data);
  if (!st) return refuse(st.error().code, st.error().message);
  return rsp::reply_ok();
}

std::string Dispatcher::on_read_register(const rsp::ReadRegister& r) {
  auto found = thread_for(r.thread);
  if (!found) return rsp::reply_error(1);
  ThreadRef th = *found;
  if (r.regno > 10000) return rsp::reply_error(22);
  auto v = target_.read_register(th, static_cast<int>(r.regno));
  if (!v) return rsp::reply_error(v.error().code);
  return rsp::to_hex(*v);
}

std::string Dispatcher::on_write_register(const rsp::WriteRegister& w) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteRegisters); !st) return refuse(1, st.error().message);
  auto found = thread_for(w.thread);
  if (!found) return rsp::reply_error(1);
  ThreadRef th = *found;
  if (w.regno > 10000) return rsp::reply_error(22);
  auto st = target_.write_register(th, static_cast<int>(w.regno), w.value);
  if (!st) return rsp::reply_error(st.error().code);
  return rsp::reply_ok();
}

std::string Dispatcher::on_read_memory(const rsp::ReadMemory& m) {
  // Replies must fit in our advertised packet size: hex doubles the bytes.
  uint64_t cap = m.binary ? config_.packet_size - 8 : (config_.packet_size - 8) / 2;
  uint64_t len = std::min<uint64_t>(m.length, cap);
  // "x addr,0" is lldb's probe for binary reads: say yes. In GDB's dialect
  // it reads nothing: "b" and no data.
  if (len == 0) return m.binary ? (binary_upload_ ? std::string("b") : rsp::reply_ok()) : std::string();
  auto data = target_.read_memory(current_pid(), m.addr, static_cast<std::size_t>(len));
  if (!data) {
    spdlog::debug("read of {} bytes at {:#x}: {}", len, m.addr, data.error().message);
    return rsp::reply_error_message(data.error().code, data.error().message, error_strings_);
  }
  if (!m.binary) return rsp::to_hex(*data);
  // Binary: GDB 16 (binary-upload+) wants a 'b' first; lldb the bare bytes.
  // (Framing escapes '$', '#', '}' and '*'.)
  return binary_upload_ ? "b" + *data : std::move(*data);
}

std::string Dispatcher::on_write_memory(const rsp::WriteMemory& m) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteMemory); !st) return refuse(1, st.error().message);
  if (m.data.empty()) return rsp::reply_ok();  // "X addr,0:" probes binary support
  auto st = target_.write_memory(current_pid(), m.addr, m.data);
  if (!st) return rsp::reply_error(st.error().code);
  return rsp::reply_ok();
}

std::string Dispatcher::on_breakpoint(const rsp::Breakpoint& b) {
  Operation op = b.type <= 1 ? Operation::Breakpoint : Operation::Watchpoint;
  if (auto st = ModePolicy::allows(target_.mode(), op); !st) return refuse(1, st.error().message);
  auto type = static_cast<BreakpointType>(b.type);
  int pid = current_pid();
  if (pid == 0) return rsp::reply_error(3);
  auto st = b.insert ? target_.insert_breakpoint(pid, type, b.addr, b.kind)
                     : target_.remove_breakpoint(pid, type, b.addr, b.kind);
  if (!st) {
    spdlog::debug("{} breakpoint type {} at {:#x}: {}", b.insert ? "insert" : "remove", b.type, b.addr,
                  st.error().message);
    // "Not supported" is the empty reply: gdb then does without (for a
    // read watchpoint, it uses an access one and compares values).
    if (st.error().code == 95) return rsp::reply_empty();
    return rsp::reply_error(st.error().code);
  }
  if (b.type <= 1) record_breakpoint_agent(pid, b);
  return rsp::reply_ok();
}

// ---------------------------------------------------------------------------
// Execution

std::string Dispatcher::on_resume(const std::vector<ResumeAction>& actions, bool& deferred) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Resume); !st) {
    // gdb is waiting for a stop reply here, the one place where it prints
    // console output before an error: say why. (lldb takes E.message.)
    if (!lldb_client_) hooks_.send(rsp::reply_console_output("dbgstub: " + st.error().message + "\n"));
    return refuse(1, st.error().message);
  }
  if (ns_.enabled) return ns_vcont(actions);
  if (!target_.has_processes() && !target_.exit_report_owed()) return "W00";
  if (interrupt_pending_) {
    // The ^C that came while stopped (or whose stop another event
    // overtook): the SIGINT gdbserver would have sent the process group of
    // the last process started or attached to stops that process's thread
    // before it runs an instruction; a resume of other processes only (gdb
    // stepping one thread over a breakpoint) goes ahead without it.
    std::optional<ThreadRef> th = interrupt_thread(actions);
    bool covered = th.has_value();
    if (!th && !interrupt_thread({ResumeAction{}})) covered = true;  // no process of gdbserver's kind: as before
    if (!th) {
      th = current_thread();
      for (auto& a : actions)
        if (a.kind != ResumeAction::Kind::Stop && a.thread && a.thread->tid > 0)
          if (auto t = resolve(wire_id(*a.thread))) { th = *t; break; }
    }
    if (target_.exit_report_owed()) {
      interrupt_pending_ = false;
    } else if (covered) {
      interrupt_pending_ = false;
      StopEvent ev;
      ev.thread = *th;
      ev.signal = SIGINT;
      ev.reason = StopEvent::Reason::Interrupt;
      spdlog::info("interrupt received while stopped: reporting SIGINT at this resume");
      waiting_for_stop_ = true;
      handle_stop(ev);
      deferred = true;
      return "";
    }
  }
  // Waiting before the call: a target may report the stop at once.
  waiting_for_stop_ = true;
  last_resume_ = actions;
  if (target_.mode() == Mode::Kernel) run_terminations(true);  // those that want the machine halted
  auto st = target_.resume(actions);
  if (!st) {
    waiting_for_stop_ = false;
    return refuse(st.error().code, st.error().message);
  }
  if (target_.mode() == Mode::Kernel) run_terminations(false);  // the machine runs: now they happen
  deferred = true;
  return "";
}

std::string Dispatcher::on_legacy_resume(const rsp::Resume& r, bool& deferred) {
  std::vector<ResumeAction> actions;
  ResumeAction a;
  a.kind = r.step ? ResumeAction::Kind::Step : ResumeAction::Kind::Continue;
  a.signal = rsp::host_signal_from_gdb(r.signal);
  a.addr = r.addr;
  ThreadRef th = c_thread_all_ ? current_thread() : c_thread_;
  if (r.step || a.signal || a.addr) {
    a.thread = th;
    actions.push_back(a);
    ResumeAction rest;  // the others continue, as in gdbserver
    actions.push_back(rest);
  } else {
    actions.push_back(a);
  }
  return on_resume(actions, deferred);
}

std::string Dispatcher::on_vcont(const rsp::VCont& v, bool& deferred) {
  std::vector<ResumeAction> actions;
  for (auto& va : v.actions) {
    ResumeAction a;
    switch (va.action) {
      case 's': case 'S': case 'r': a.kind = ResumeAction::Kind::Step; break;
      case 't': a.kind = ResumeAction::Kind::Stop; break;
      default: a.kind = ResumeAction::Kind::Continue; break;
    }
    a.signal = rsp::host_signal_from_gdb(va.signal);
    if (va.action == 'r') {
      a.range_start = va.range_start;
      a.range_end = va.range_end;
    }
    if (va.thread && !(va.thread->tid == -1 && va.thread->pid <= 0)) {
      ThreadRef t{static_cast<int>(va.thread->pid), static_cast<int>(va.thread->tid)};
      a.thread = t;
    }
    actions.push_back(a);
  }
  return on_resume(actions, deferred);
}

// ---------------------------------------------------------------------------
// Documents

std::string Dispatcher::on_xfer(const rsp::XferRead& x) {
  // A document read in several chunks must be one snapshot: a process
  // list made anew for each chunk would be cut at different places. The
  // first chunk (offset 0) builds it; later ones read that copy.
  std::string key = x.object + ":" + x.annex;
  uint64_t cap = config_.packet_size - 8;
  if (x.offset > 0 && xfer_cache_key_ == key)
    return rsp::build_xfer_chunk(xfer_cache_, x.offset, std::min<uint64_t>(x.length, cap));
  std::string doc;
  if (x.object == "features") {
    if (x.annex != "target.xml") return rsp::reply_error(0);
    // As gdbserver: no process, no description. gdb then keeps the
    // architecture the user set ("set architecture i386"), and asks again
    // once a program runs.
    if (target_.mode() == Mode::User && !target_.has_processes()) return rsp::reply_error(1);
    doc = target_.target_xml();
  } else if (x.object == "threads") {
    if (disabled("threads")) return rsp::reply_empty();
    doc = threads_xml();
  } else if (x.object == "osdata") {
    auto d = target_.mode() == Mode::Kernel && x.annex == "processes" && target_.guest_processes()
                 ? guest_osdata_processes()
                 : target_.osdata(x.annex);
    if (!d) return rsp::reply_error(d.error().code);
    doc = *d;
  } else if (x.object == "siginfo") {
    auto si = target_.siginfo(current_thread());
    if (!si) return rsp::reply_error(si.error().code);
    doc = *si;
  } else if (x.object == "auxv" || x.object == "libraries-svr4" || x.object == "exec-file") {
    int pid = current_pid();
    if (x.object == "exec-file" && !x.annex.empty()) {
      auto p = rsp::parse_hex_u64(x.annex);
      if (!p) return rsp::reply_error(22);
      pid = static_cast<int>(*p);
    }
    auto r = x.object == "auxv" ? target_.auxv(pid)
             : x.object == "exec-file" ? target_.exec_file(pid)
                                       : target_.libraries_svr4(pid, x.annex);
    if (!r) return rsp::reply_error(r.error().code);
    doc = *r;
  } else {
    return rsp::reply_empty();
  }
  xfer_cache_key_ = key;
  xfer_cache_ = doc;
  return rsp::build_xfer_chunk(doc, x.offset, std::min<uint64_t>(x.length, cap));
}

std::string Dispatcher::on_monitor(const rsp::MonitorCommand& m) {
  spdlog::info("monitor {}", m.command);
  MonitorResult r = monitor_.run(m.command);
  if (!r.output.empty()) hooks_.send(rsp::reply_console_output(r.output));
  if (!r.ok) spdlog::info("monitor {}: {}", m.command, r.output.substr(0, r.output.find('\n')));
  // As gdbserver: a failed command says why in its output, then errors.
  return r.ok ? rsp::reply_ok() : rsp::reply_error(1);
}

// ---------------------------------------------------------------------------
// Ending and starting

std::string Dispatcher::on_detach(const rsp::Detach& d) {
  if (target_.mode() != Mode::User) return rsp::reply_ok();  // nothing attached: the debugger just leaves
  int pid = d.pid ? static_cast<int>(*d.pid) : current_pid();
  // A process that ended unreported (killed from outside) can still be
  // detached from: the target just forgets it.
  if (!target_.has_processes() && !target_.exit_report_owed()) return rsp::reply_error(3);
  auto st = target_.detach_process(pid);
  if (!st) return refuse(st.error().code, st.error().message);
  return rsp::reply_ok();
}

std::string Dispatcher::on_kill(std::optional<int64_t> pid_arg, bool& deferred, bool legacy) {
  KillDecision d = ModePolicy::kill(target_.mode(), legacy ? KillSource::PacketK : KillSource::PacketVKill);
  if (d.action == KillDecision::Action::Refuse) {
    if (legacy && !lldb_client_) {
      // GDB reads no reply to 'k' (a stray one would answer its next
      // packet): the refusal can only be logged.
      spdlog::warn("kill refused: {}", d.message);
      deferred = true;
      return "";
    }
    return refuse(1, d.message);
  }
  if (d.action == KillDecision::Action::Schedule) {
    // A machine: the current process is scheduled for termination (the
    // pid gdb names is its own idea of the VM, never a guest pid: pid 1
    // would be init).
    auto text = schedule_current_process();
    if (!text) spdlog::warn("kill refused: {}", text.error().message);
    if (legacy && !lldb_client_) {
      deferred = true;
      return "";
    }
    return text ? rsp::reply_ok() : refuse(1, text.error().message);
  }
  int pid = pid_arg ? static_cast<int>(*pid_arg) : selected_pid();
  auto st = target_.kill_process(pid);
  if (ns_.enabled && st) {
    ns_.killed.insert(pid);  // its exit is not news to gdb
    ns_reconcile();
  }
  if (legacy) {
    // GDB does not read a reply to 'k' (a stray one would be taken as the
    // answer to its next packet); lldb waits for the exit report.
    if (lldb_client_) return rsp::build_signal_exit_reply(rsp::gdb_signal_from_host(SIGKILL), std::nullopt);
    deferred = true;
    return "";
  }
  if (!st) return refuse(st.error().code, st.error().message);
  return rsp::reply_ok();
}

std::string Dispatcher::on_run(const rsp::VRun& r, bool& deferred) {
  if (!config_.allow_run) return refuse(1, "starting programs remotely is not allowed (start dbgstub with --allow-run)");
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Run); !st) return refuse(1, st.error().message);
  ProcessLauncher* l = target_.launcher();
  if (!l) return refuse(1, "this target cannot start programs");
  LaunchSpec spec;
  spec.argv = r.argv;
  if (spec.argv.empty() || spec.argv[0].empty()) {
    // No program named (gdb's add-inferior, then run): as gdbserver, the
    // program of the last run with the new arguments, else the one given
    // on the command line.
    std::vector<std::string> args(spec.argv.begin() + (spec.argv.empty() ? 0 : 1), spec.argv.end());
    if (last_run_ && !last_run_->argv.empty()) {
      spec.argv = {last_run_->argv[0]};
      spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    } else {
      if (config_.default_program.empty()) return refuse(2, "no program given to run");
      spec.argv = config_.default_program;
      if (!args.empty()) spec.argv.resize(1), spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    }
  }
  // The program on dbgstub's command line is the operator's choice, not the
  // debugger's: the allow-list is not for it.
  bool from_command_line = !config_.default_program.empty() && spec.argv[0] == config_.default_program[0];
  int exec_fd = -1;  // the checked program, exec'd through its descriptor
  if (config_.policy.run && !from_command_line) {
    auto fd = open_allowed_program(*config_.policy.run, spec.argv[0]);
    if (!fd) return refuse(fd.error().code, fd.error().message);
    exec_fd = *fd;
  }
  spec.env = environment_;
  spec.cwd = working_dir_;
  spec.disable_aslr = disable_randomization_;
  // Other processes stay: a run in a second inferior must not end the
  // first. (Re-running the same inferior, gdb kills it first with vKill.)
  spec.wrapper = config_.wrapper;
  spec.redirect_stdio = config_.redirect_stdio;
  last_run_ = spec;
  interrupt_pending_ = false;  // a ^C for the old processes is not for the new one
  interrupt_sent_ = false;
  last_resume_.clear();
  spec.exec_fd = exec_fd;
  auto st = l->launch(spec);
  if (exec_fd >= 0) ::close(exec_fd);
  if (!st) return refuse(st.error().code, st.error().message);
  waiting_for_stop_ = true;
  deferred = true;
  return "";
}

std::string Dispatcher::on_attach(const rsp::VAttach& a, bool& deferred) {
  if (!config_.allow_attach)
    return refuse(1, "attaching to processes remotely is not allowed (start dbgstub with --allow-attach)");
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Attach); !st) return refuse(1, st.error().message);
  ProcessLauncher* l = target_.launcher();
  if (!l) return refuse(1, "this target cannot attach to processes");
  if (config_.policy.attach)
    if (auto st = check_attach(*config_.policy.attach, static_cast<int>(a.pid)); !st)
      return refuse(st.error().code, st.error().message);
  interrupt_pending_ = false;
  interrupt_sent_ = false;
  last_resume_.clear();
  auto st = l->attach(static_cast<int>(a.pid));
  if (!st) return refuse(st.error().code, st.error().message);
  // Non-stop: "OK" once the process is stopped, the stops come later.
  if (ns_.enabled) ns_.attach_pending = true;
  else waiting_for_stop_ = true;
  deferred = true;
  return "";
}

// ---------------------------------------------------------------------------
// lldb

std::string Dispatcher::on_host_info() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return rsp::build_key_values({
      {"triple", kv_hex(kTriple)},
      {"ptrsize", "8"},
      {"endian", "little"},
      {"ostype", "linux"},
      {"vendor", "pc"},
      {"watchpoint_exceptions_received", "after"},
      {"hostname", kv_hex(host)},
  });
}

std::string Dispatcher::on_process_info() {
  int pid = current_pid();
  if (pid == 0) return rsp::reply_error(3);
  return rsp::build_key_values({
      {"pid", rsp::hex_u64(static_cast<uint64_t>(pid))},
      {"parent-pid", rsp::hex_u64(static_cast<uint64_t>(::getpid()))},
      {"real-uid", rsp::hex_u64(::getuid())},
      {"real-gid", rsp::hex_u64(::getgid())},
      {"effective-uid", rsp::hex_u64(::geteuid())},
      {"effective-gid", rsp::hex_u64(::getegid())},
      {"triple", kv_hex(kTriple)},
      {"ostype", "linux"},
      {"endian", "little"},
      {"ptrsize", "8"},
  });
}

std::string Dispatcher::on_register_info(uint64_t regno) {
  const auto& regs = x86::registers();
  if (regno >= regs.size()) return "E45";
  const auto& r = regs[regno];
  std::vector<std::pair<std::string, std::string>> kv = {
      {"name", r.name},
      {"bitsize", std::to_string(r.bitsize)},
      {"offset", std::to_string(r.offset)},
      {"encoding", r.encoding},
      {"format", r.format},
      {"set", r.set},
  };
  if (r.dwarf >= 0) {
    kv.emplace_back("ehframe", std::to_string(r.dwarf));
    kv.emplace_back("dwarf", std::to_string(r.dwarf));
  }
  if (!r.generic.empty()) kv.emplace_back("generic", r.generic);
  return rsp::build_key_values(kv);
}

std::string Dispatcher::on_memory_region(uint64_t addr) {
  auto r = target_.memory_region(current_pid(), addr);
  if (!r) return rsp::reply_error(r.error().code);
  std::vector<std::pair<std::string, std::string>> kv = {
      {"start", rsp::hex_u64(r->start)},
      {"size", rsp::hex_u64(r->size)},
  };
  if (r->mapped) {
    std::string perms;
    if (r->read) perms += 'r';
    if (r->write) perms += 'w';
    if (r->exec) perms += 'x';
    kv.emplace_back("permissions", perms);
    if (!r->name.empty()) kv.emplace_back("name", rsp::to_hex(r->name));
  }
  return rsp::build_key_values(kv);
}

std::string Dispatcher::on_thread_stop_info(const rsp::ThreadId& t) {
  auto r = resolve(t);
  if (!r) return rsp::reply_error(1);
  auto last = target_.last_stop();
  StopEvent ev;
  if (last && last->kind == StopEvent::Kind::Signal && last->thread == *r) {
    ev = *last;
  } else {
    ev.thread = *r;
    ev.signal = 0;
  }
  return stop_reply(ev);
}

}  // namespace dbgstub
