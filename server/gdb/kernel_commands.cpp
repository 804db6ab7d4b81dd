// Kernel mode (a VM): the guest's processes ("!process", gdb's "info os
// processes") and WinDbg's kernel-mode ".kill Process", which schedules the
// process for termination at the machine's next run instead of ending
// anything while it is halted. GDB's k and vKill are turned into the same.
#include <spdlog/spdlog.h>

#include <sstream>

#include "protocol/rsp/reply.h"
#include "server/gdb/dispatcher.h"
#include "server/termination_schedule.h"
#include "targets/local_kernel/local_kernel_internal.h"

namespace dbgstub {
namespace {

const char* kNoGuest =
    "this target cannot see the guest's processes (give the VM's guest agent socket: --vm ...,qga=PATH)";

std::string hex16(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void Dispatcher::add_kernel_commands() {
  if (target_.mode() != Mode::Kernel) return;
  monitor_.add("!process", "[0 0 | ADDRESS | CID]", "List the guest's processes (task address, pid, name)",
               [this](const std::string& a) { return cmd_bang_process(a); });
}

Result<GuestProcess> Dispatcher::guest_current_process() {
  GuestProcesses* guest = target_.guest_processes();
  if (!guest) return make_error(95, kNoGuest);
  auto cpu = target_.cpu_of(current_thread());
  if (!cpu) return make_error(3, "no current processor");
  return guest->current(*cpu);
}

// .kill [0 | ADDRESS]: 0 or nothing is the current process of the current
// processor, ADDRESS a task address from "!process 0 0".
MonitorResult Dispatcher::cmd_kill_kernel(const std::string& args) {
  TerminationSchedule* schedule = config_.terminations;
  GuestProcesses* guest = target_.guest_processes();
  if (!schedule || !guest) return {std::string(kNoGuest) + "\n", false};
  std::istringstream in(args);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  const std::string usage = "Usage: .kill [0 | ADDRESS]  (ADDRESS from \"monitor !process 0 0\"; 0 or nothing: the "
                            "current process)\n";
  if (w.size() > 1) return {usage, false};
  std::optional<uint64_t> address;
  if (!w.empty()) {
    address = lk::parse_address(w[0]);
    if (!address) return {usage, false};
  }
  auto p = address && *address != 0 ? guest->at(*address) : guest_current_process();
  if (!p) return {"Cannot find the process: " + p.error().message + "\n", false};
  auto text = schedule->schedule(*p);
  if (!text) {
    spdlog::info(".kill refused: {}", text.error().message);
    return {text.error().message + "\n", false};
  }
  return {*text, true};
}

// k and vKill: "end the program being debugged" is, for a machine, the
// current process of the current processor; scheduled like .kill.
Result<std::string> Dispatcher::schedule_current_process() {
  TerminationSchedule* schedule = config_.terminations;
  if (!schedule || !target_.guest_processes()) return make_error(95, kNoGuest);
  auto p = guest_current_process();
  if (!p) return p.error();
  return schedule->schedule(*p);
}

// The machine runs again: pending terminations happen now. Their outcome
// reaches the console while gdb still waits for the stop (the one time it
// takes console output), and the log always.
void Dispatcher::run_terminations(bool halted) {
  TerminationSchedule* schedule = config_.terminations;
  GuestProcesses* guest = target_.guest_processes();
  if (!schedule || !guest || schedule->empty()) return;
  // Through the guest agent, once the machine runs; without one, just
  // before (the guest kernel does it, called through the VM).
  if (guest->terminates_while_halted() != halted) return;
  auto alive = alive_;
  schedule->run(*guest, [this, alive](const std::string& line) {
    if (*alive && waiting_for_stop_) hooks_.send(rsp::reply_console_output(line));
  });
}

MonitorResult Dispatcher::cmd_bang_process(const std::string& args) {
  GuestProcesses* guest = target_.guest_processes();
  if (!guest) return {std::string(kNoGuest) + "\n", false};
  const std::string usage =
      "Usage: !process [0 0 | ADDRESS | CID]   (FLAGS are accepted and ignored; e.g. !process 0 0)\n";
  auto parsed = lk::parse_bang_process_args(args);
  if (!parsed) return {usage, false};
  uint64_t which = parsed->which;
  const std::string& image = parsed->image;
  auto procs = guest->list();
  if (!procs) return {"Cannot list the guest's processes: " + procs.error().message + "\n", false};
  // Which process each processor was running when the machine stopped.
  std::vector<std::pair<unsigned, uint64_t>> current;
  for (auto& t : target_.threads())
    if (auto cpu = target_.cpu_of(t))
      if (auto p = guest->current(*cpu)) current.emplace_back(*cpu, p->address);
  std::string out = which == 0 ? "**** ACTIVE PROCESS DUMP ****\n" : "";
  int shown = 0;
  for (const auto& p : *procs) {
    if (which != 0 && p.address != which && static_cast<uint64_t>(p.pid) != which) continue;
    if (!image.empty() && !lk::wildcard_match(image, p.name)) continue;
    char cid[16];
    std::snprintf(cid, sizeof cid, "%04x", static_cast<unsigned>(p.pid));
    out += "PROCESS " + hex16(p.address) + "  SessionId: none  Cid: " + cid + "  (pid " + std::to_string(p.pid) + ")\n";
    out += "    Image: " + p.name;
    if (p.idle) out += "  (idle task)";
    else if (p.kernel_thread) out += "  (kernel thread)";
    for (auto& [cpu, addr] : current)
      if (addr == p.address) out += "  (current on processor " + std::to_string(cpu) + ")";
    out += "\n\n";
    ++shown;
  }
  if (shown == 0 && which != 0) return {out + "No such process.\n", false};
  if (config_.terminations) out += config_.terminations->pending_text();
  return {out, true};
}

Result<std::string> Dispatcher::guest_osdata_processes() {
  GuestProcesses* guest = target_.guest_processes();
  if (!guest) return make_error(95, kNoGuest);
  auto procs = guest->list();
  if (!procs) return procs.error();
  std::string x = "<osdata type=\"processes\">\n";
  for (auto& p : *procs) {
    if (p.idle) continue;
    x += "<item><column name=\"pid\">" + std::to_string(p.pid) + "</column><column name=\"user\"></column>";
    x += "<column name=\"command\">" + lk::xml_escape_text(p.kernel_thread ? "[" + p.name + "]" : p.name) + "</column>";
    x += "<column name=\"cores\"></column></item>";
  }
  return x + "</osdata>\n";
}

}  // namespace dbgstub
