// WinDbg's process commands as "monitor" commands: .kill, |*, |Ns, .childdbg.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "protocol/rsp/reply.h"
#include "server/gdb/dispatcher.h"
#include "server/mode_policy.h"

namespace dbgstub {
namespace {

const char* origin_name(ProcessInfo::Origin o) {
  switch (o) {
    case ProcessInfo::Origin::Created: return "create";
    case ProcessInfo::Origin::Attached: return "attach";
    case ProcessInfo::Origin::Child: return "child";
  }
  return "?";
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

void Dispatcher::add_process_commands() {
  monitor_.add(".kill", "[/h|/n]", "End the current process now (/n: by the signal it is stopped with)",
               [this](const std::string& a) { return cmd_kill(a); });
  monitor_.add("|", "[*|Ns]", "List processes (|*), show (|) or select (|Ns) the current one",
               [this](const std::string& a) { return cmd_processes(a); });
  monitor_.add(".childdbg", "[0|1]", "Show or set whether child processes are debugged",
               [this](const std::string& a) { return cmd_childdbg(a); });
}

void Dispatcher::apply_child_policy() {
  ChildPolicy p;
  p.report_fork = fork_events_;
  p.report_vfork = vfork_events_;
  p.report_exec = exec_events_;
  // Children are traced only when someone wants them: the debugger asked
  // for fork events, or .childdbg / -o says so.
  p.follow = fork_events_ || vfork_events_ || childdbg_;
  target_.set_child_policy(p);
}

// .kill [/h | /n]: WinDbg's user-mode .kill. /h (default) continues the
// outstanding event as handled: its signal is discarded and the process
// ends by SIGKILL. /n continues it as not handled: the signal it stopped
// with is delivered and ends it (a SIGSEGV ends it by SIGSEGV).
MonitorResult Dispatcher::cmd_kill(const std::string& args) {
  if (target_.mode() == Mode::Kernel) return cmd_kill_kernel(args);
  // The mode decides first: in a local kernel session no argument makes
  // .kill acceptable.
  KillDecision d = ModePolicy::kill(target_.mode(), KillSource::MonitorKill);
  if (d.action == KillDecision::Action::Refuse) {
    spdlog::warn(".kill refused: {}", d.message);
    return {d.message + "\n", false};
  }
  KillOptions how;
  how.report_exit = true;
  for (const std::string& w : words(args)) {
    if (w == "/h" || w == "/H") {
      how.deliver_pending_signal = false;
    } else if (w == "/n" || w == "/N") {
      how.deliver_pending_signal = true;
    } else {
      return {"Usage: .kill [/h | /n]  (unexpected '" + w + "')\n", false};
    }
  }
  int pid = selected_pid();
  if (pid == 0) return {"No process to kill.\n", false};
  auto st = target_.kill_process(pid, how);
  if (!st) return {"Cannot kill process " + std::to_string(pid) + ": " + st.error().message + "\n", false};
  return {"Terminated.  Exit thread and process events will occur.\n", true};
}

// "|*" list, "|" current, "|Ns" select. Indexes are the target's stable
// process numbers.
MonitorResult Dispatcher::cmd_processes(const std::string& args) {
  auto procs = target_.processes();
  int current = selected_pid();
  auto last = target_.last_stop();
  int event_pid = last ? last->thread.pid : 0;
  auto line = [&](const ProcessInfo& p) {
    char marker = p.pid == current ? '.' : p.pid == event_pid ? '#' : ' ';
    std::ostringstream o;
    o << marker << std::string(1, ' ') << (p.index < 10 ? "  " : p.index < 100 ? " " : "") << p.index
      << "\tid: " << std::hex << p.pid << std::dec << "\t" << origin_name(p.origin)
      << "\tname: " << (p.executable.empty() ? p.name : p.executable) << "\n";
    return o.str();
  };
  std::string a = args;
  a.erase(0, a.find_first_not_of(" \t"));
  a.erase(a.find_last_not_of(" \t") + 1 == 0 ? 0 : a.find_last_not_of(" \t") + 1);
  if (a == "*") {
    if (procs.empty()) return {"No processes.\n", true};
    std::string out;
    for (auto& p : procs) out += line(p);
    return {out, true};
  }
  if (a.empty()) {
    for (auto& p : procs)
      if (p.pid == current) return {line(p), true};
    return {"No current process.\n", false};
  }
  if (a.size() >= 2 && (a.back() == 's' || a.back() == 'S')) {
    std::string num = a.substr(0, a.size() - 1);
    num.erase(num.find_last_not_of(" \t") + 1);
    if (!num.empty() && num.find_first_not_of("0123456789") == std::string::npos && num.size() < 9) {
      int index = std::stoi(num);
      for (auto& p : procs) {
        if (p.index != index) continue;
        selected_pid_ = p.pid;
        for (auto& t : target_.threads())
          if (t.pid == p.pid) {
            g_thread_ = t;
            break;
          }
        return {line(p), true};
      }
      return {"No process with index " + num + ". \"monitor |*\" lists them.\n", false};
    }
  }
  return {"Usage: |* (list), | (current), |Ns (make process N current)\n", false};
}

MonitorResult Dispatcher::cmd_childdbg(const std::string& args) {
  auto w = words(args);
  if (w.size() > 1 || (w.size() == 1 && w[0] != "0" && w[0] != "1"))
    return {"Usage: .childdbg [0|1]\n", false};
  if (w.size() == 1) {
    childdbg_ = w[0] == "1";
    apply_child_policy();
  }
  return {std::string("Processes created by the current process will ") + (childdbg_ ? "" : "not ") + "be debugged\n",
          true};
}

}  // namespace dbgstub
